"""SMTP side of the bench: Postfix's ``smtp-sink`` on a free loopback port, and the raw
``smtplib`` limit (one connection, messages built beforehand) to compare dispatch with.

``smtp-sink`` comes from Debian's ``postfix`` package. When it is missing the bench installs
the package with ``postfix/main_mailer_type`` preseeded to "No configuration", so no
``main.cf`` is written and the Postfix daemon is not started; if a Postfix master process
that the install started is running afterwards anyway, it is stopped again. Only the
``smtp-sink`` binary is used, never port 25.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import time
from pathlib import Path

from bench.procs import Child, Supervisor, free_port, port_open, wait_until

SMTP_SINK = Path("/usr/sbin/smtp-sink")


def find_or_install_smtp_sink() -> Path:
    found = shutil.which("smtp-sink") or (str(SMTP_SINK) if SMTP_SINK.exists() else None)
    if found:
        return Path(found)
    print("bench: smtp-sink is missing; installing Debian's postfix package (no configuration)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["debconf-set-selections"],  # noqa: S607
        input="postfix postfix/main_mailer_type select No configuration\n",
        text=True,
        check=True,
        env=env,
    )
    master_before = _postfix_master_running()
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postfix"]
    if subprocess.run(install, env=env, check=False).returncode != 0:  # noqa: S603
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True)  # noqa: S607
        subprocess.run(install, env=env, check=True)  # noqa: S603
    if not master_before and _postfix_master_running():
        # The daemon is not wanted: only the smtp-sink binary is.
        subprocess.run(["postfix", "stop"], env=env, check=False)  # noqa: S607
    if not SMTP_SINK.exists():
        raise RuntimeError("postfix installed, but /usr/sbin/smtp-sink is still missing")
    return SMTP_SINK


def _postfix_master_running() -> bool:
    pidfile = Path("/var/spool/postfix/pid/master.pid")
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}/comm").read_text().strip() == "master"


def start_sink(supervisor: Supervisor, binary: Path, *, cwd: Path) -> tuple[Child, int]:
    """``smtp-sink`` on 127.0.0.1:<free port>; it accepts every message and keeps none.

    ``-u`` is needed when run as root (it drops to that user after binding); the backlog
    (last argument) is large so many workers' connections are accepted at once.
    """
    port = free_port()
    user = "nobody"
    command = [str(binary), "-u", user, "-c", f"127.0.0.1:{port}", "1024"]
    child = supervisor.start("smtp-sink", command, env=dict(os.environ), cwd=cwd, quiet=True)
    wait_until(lambda: port_open(port), timeout=10, what="smtp-sink to listen")
    return child, port


def sink_messages(child: Child) -> int:
    """Messages the sink has accepted so far, from its ``-c`` counter line (``mesg=N``)."""
    match = re.search(r"mesg=(\d+)", child.last_line)
    return int(match.group(1)) if match else 0


def raw_smtplib(port: int, messages: list[tuple[str, str, bytes]]) -> dict[str, float]:
    """Send prebuilt ``(from, to, bytes)`` messages over ONE connection: the client-side limit."""
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("bench.example.com")
        for sender, recipient, raw in messages:
            smtp.sendmail(sender, [recipient], raw)
    seconds = time.perf_counter() - started
    return {"messages": len(messages), "seconds": seconds, "per_second": len(messages) / seconds}

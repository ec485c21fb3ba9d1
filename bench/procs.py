"""The processes the bench starts, and how it stops every one of them.

Each child runs in its own session (process group), so stopping it also stops whatever it
forked (gunicorn's and Celery's worker processes). ``Supervisor.stop_all`` runs at the end
of the run, on failure and on Ctrl-C/SIGTERM (``signals_stop``); it signals only the
process groups it created, by their id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[str]
    log_path: Path
    lines: list[str] = field(default_factory=list)
    last_line: str = ""
    # A chatty child (smtp-sink's counters): keep only its last line, write no log file.
    quiet: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, count: int = 40) -> str:
        return "".join(self.lines[-count:])

    def wait_for_line(self, text: str, *, timeout: float) -> None:
        """Wait until the child prints a line containing ``text`` (e.g. Celery's " ready.")."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not print {text!r} in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.05)

    def _pump(self, stream: IO[str]) -> None:
        with self.log_path.open("w") as out:
            for line in stream:
                self.last_line = line
                if self.quiet:
                    continue
                if len(self.lines) < 5000:  # bounded: the log file has everything
                    self.lines.append(line)
                out.write(line)
                out.flush()


class Supervisor:
    """Starts children, remembers them, and stops them all (last started, first stopped)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.cleanups: list[tuple[str, Callable[[], None]]] = []

    def start(
        self, name: str, command: list[str], *, env: dict[str, str], cwd: Path, quiet: bool = False
    ) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        child = Child(name=name, process=process, log_path=self.log_dir / f"{name}.log", quiet=quiet)
        self.children.append(child)
        if process.stdout is None:  # pragma: no cover - stdout=PIPE always gives one
            raise RuntimeError(f"{name}: no output pipe")
        threading.Thread(target=child._pump, args=(process.stdout,), daemon=True).start()
        return child

    def on_stop(self, what: str, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` in ``stop_all`` (for services the bench started outside ``start``)."""
        self.cleanups.append((what, cleanup))

    def stop(self, child: Child, *, grace: float = 20.0) -> None:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.process.wait(timeout=10)
        # Children of the child (prefork pools) that outlived it, in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(list(self.children)):
            try:
                self.stop(child)
            except Exception as exc:  # keep stopping the others
                print(f"bench: could not stop {child.name} (pid {child.pid}): {exc}")
        while self.cleanups:
            what, cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as exc:
                print(f"bench: could not stop {what}: {exc}")


@contextlib.contextmanager
def signals_stop() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP end the run as Ctrl-C does, so ``finally`` blocks stop everything.

    SIGINT is set explicitly: a shell starts a background job with SIGINT ignored.
    """

    def interrupt(signum: int, frame: FrameType | None) -> Any:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc/<pid>/task/<tid>/children."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(p) for p in (task / "children").read_text().split())
    return found


def peak_rss_kib(pid: int) -> int | None:
    """VmHWM (peak resident set size, KiB) of one process, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` and every process below it (from /proc/<pid>/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in descendants(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


def cpu_seconds_named(name: str) -> float:
    """CPU time of every process called ``name`` (PostgreSQL's server and its backends).

    A backend that has exited counts through its parent's cutime and cstime.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text.split(" (", 1)[1].rsplit(")", 1)
        if comm == name:
            fields = rest.split()
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks

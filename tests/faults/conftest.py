"""Fault tests: a campaign sent by real Celery workers through Redis and PostgreSQL, one fault each.

Every test records a row (fault, recipients, sent, duplicates, lost) and the session
prints them as one table at its end; ``make faults`` runs just these tests
(``pytest -m faults``). They are also ``e2e``, so the ordinary suite and CI run them too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config.celery import app as celery_app
from tests.conftest import BASE_DIR, database_url_for_tests, free_port, require_service
from tests.e2e.mailgun_server import MailgunServer
from tests.e2e.mailgun_server import serve as serve_mailgun
from tests.e2e.transport_faults import FaultySMTPServer
from tests.faults.guarantees import ROWS

MAILGUN_KEY = "key-test"
MAILGUN_DOMAIN = "mg.example.com"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: a fault injected while a campaign sends (make faults)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not ROWS:
        return
    header = ("fault", "recipients", "sent", "duplicates", "lost")
    width = max(len(header[0]), *(len(row.fault) for row in ROWS))
    terminalreporter.write_sep("=", "faults")
    terminalreporter.write_line(f"{header[0]:<{width}}  " + "  ".join(f"{h:>10}" for h in header[1:]))
    for row in ROWS:
        numbers = (row.recipients, row.sent, row.duplicates, row.lost)
        terminalreporter.write_line(f"{row.fault:<{width}}  " + "  ".join(f"{n:>10}" for n in numbers))


@pytest.fixture
def mailgun() -> Iterator[MailgunServer]:
    yield from serve_mailgun(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN)


@pytest.fixture
def faulty_smtp() -> Iterator[FaultySMTPServer]:
    """An aiosmtpd server that can refuse recipients and fail messages (``FaultPlan``)."""
    from aiosmtpd.controller import Controller

    server = FaultySMTPServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- A Redis of the test's own, to restart ----------------------------------------------


@dataclass
class RedisProcess:
    port: int
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: whatever it held (queued tasks, cache) is gone, as after a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _use_broker(url: str) -> None:
    # Read and write URLs are resolved from broker_url when the app is configured.
    celery_app.conf.update(broker_url=url, broker_read_url=url, broker_write_url=url)
    # Drop the cached pools (as Celery does after a fork) so the next task opens ``url``.
    celery_app._pool = None  # type: ignore[attr-defined]
    celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]


@pytest.fixture
def private_redis() -> Iterator[RedisProcess]:
    """A redis-server this test may crash and restart; this process's tasks go to it too.

    Request it before ``start_celery_worker``, and give the workers its URLs.
    """
    try:
        subprocess.run(["redis-server", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        require_service("redis-server", str(exc))
    redis = RedisProcess(port=free_port())
    redis.start()
    saved = str(celery_app.conf.broker_url)
    _use_broker(redis.url(0))
    try:
        yield redis
    finally:
        _use_broker(saved)
        redis.crash()


# --- The scheduler ----------------------------------------------------------------------


@dataclass
class Beats:
    tmp_path: Path
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, **environment: str) -> subprocess.Popen[str]:
        """A real ``celery beat`` process with its own schedule file."""
        number = len(self.processes)
        log = self.tmp_path / f"celery-beat-{number}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url_for_tests(),
            "CELERY_BROKER_URL": str(celery_app.conf.broker_url),
            "DEBUG": "1",
            "PYTHONUNBUFFERED": "1",
            **environment,
        }
        schedule = self.tmp_path / f"beat-schedule-{number}"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "--loglevel=INFO",
            "-s",
            str(schedule),
        ]
        with log.open("w") as out:
            process = subprocess.Popen(
                command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        self.processes.append(process)
        self.logs.append(log)
        return process

    def stop(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def log(self) -> str:
        return "".join(f"--- {path.name}\n{path.read_text()}" for path in self.logs if path.exists())


@pytest.fixture
def beats(tmp_path: Path) -> Iterator[Beats]:
    started = Beats(tmp_path=tmp_path)
    yield started
    for process in started.processes:
        started.stop(process)

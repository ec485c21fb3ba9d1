"""Shared fixtures.

Ordinary tests run Celery tasks eagerly, in the test process, and run ``on_commit``
callbacks when a service's outermost transaction ends, as a real commit would. Tests
marked ``e2e`` use real processes instead: a Celery worker (``celery_worker_process``),
an SMTP server (``smtp_server``) and committed data (``transactional_db``). Tests marked
``browser`` drive Debian's headless Chromium (``browser``) against ``live_server``.

A test whose service is missing skips locally with the reason; with ``CI`` or
``REQUIRE_SERVICES`` set it fails (``require_service``).
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from config.celery import app as celery_app
from subscribers import services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentText, Purpose, Subscriber
from tests.e2e.smtp_server import ReceivedMail, SMTPServer  # noqa: F401 (tests import them from here)
from tests.factories import publish_text

logger = logging.getLogger(__name__)

BASE_DIR = Path(settings.BASE_DIR)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WORKER_START_TIMEOUT = 60.0


# --- Services that may be missing -------------------------------------------------------


def services_required() -> bool:
    """True in CI (``CI=true``) or with ``REQUIRE_SERVICES=1``: nothing may skip for lack of a service."""
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    required = os.environ.get("REQUIRE_SERVICES", "").strip().lower() not in ("", "0", "false", "no")
    return ci or required


def require_service(name: str, reason: str) -> NoReturn:
    """Skip the test for lack of ``name`` locally; fail it in CI."""
    message = f"{name} is not available: {reason}"
    if services_required():
        pytest.fail(f"{message} (CI / REQUIRE_SERVICES is set, so this fails instead of skipping)")
    pytest.skip(message)


# --- Every test -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    """The signup rate limit counts in the cache; each test starts from zero."""
    cache.clear()


@pytest.fixture(autouse=True)
def _celery_eager_unless_e2e(request: pytest.FixtureRequest) -> Iterator[None]:
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    eager = request.node.get_closest_marker("e2e") is None
    conf.task_always_eager = conf.task_eager_propagates = eager
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved


def _uses_database(request: pytest.FixtureRequest) -> bool:
    names = {"db", "transactional_db", "live_server", "django_db_reset_sequences"}
    return request.node.get_closest_marker("django_db") is not None or bool(names & set(request.fixturenames))


@pytest.fixture(autouse=True)
def _on_commit_at_service_boundary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ``on_commit`` callbacks when the outermost transaction inside the test ends.

    An ordinary ``db`` test runs inside a transaction that is rolled back, so nothing ever
    commits and queued emails would never be sent. Here, when a service's outermost
    ``atomic`` block exits without error, its callbacks run as after a real COMMIT;
    callbacks of a block that rolled back are dropped by Django as usual. Transactional
    tests (``transactional_db``, ``live_server``) commit for real and are left alone, as
    are tests using ``django_capture_on_commit_callbacks``.
    """
    if not _uses_database(request) or "django_capture_on_commit_callbacks" in request.fixturenames:
        return
    request.getfixturevalue("_django_db_helper")
    connection = connections[DEFAULT_DB_ALIAS]
    if not connection.in_atomic_block:
        return  # a transactional test: real commits
    base_depth = len(connection.atomic_blocks)
    original_exit = transaction.Atomic.__exit__

    def exit_and_commit(self: transaction.Atomic, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        result = original_exit(self, exc_type, exc_value, traceback)
        conn = transaction.get_connection(self.using)
        if exc_type is None and conn is connection and len(conn.atomic_blocks) == base_depth:
            while conn.run_on_commit and not conn.needs_rollback:
                callbacks, conn.run_on_commit = conn.run_on_commit, []
                for entry in callbacks:
                    _savepoints, func, robust = cast(tuple[Any, Callable[[], None], bool], entry)
                    if robust:
                        try:
                            func()
                        except Exception:
                            logger.exception("on_commit callback %r failed", func)
                    else:
                        func()
        return result

    monkeypatch.setattr(transaction.Atomic, "__exit__", exit_and_commit)


# --- Data -------------------------------------------------------------------------------


@pytest.fixture
def seeded(db: None) -> None:
    """The purposes and staff groups of the data migration.

    A transactional test before this one may have flushed them; they are put back by the
    migration's own code, which is idempotent.
    """
    from django.apps import apps

    importlib.import_module("subscribers.migrations.0003_purposes_and_groups").forward(apps, None)
    importlib.import_module("marketing.migrations.0002_marketers_permissions").forward(apps, None)
    importlib.import_module("marketing.migrations.0004_delivery_events").forward(apps, None)
    importlib.import_module("subscribers.migrations.0006_suppression_lift").forward(apps, None)
    importlib.import_module("subscribers.migrations.0007_erasure_permission").forward(apps, None)
    importlib.import_module("subscribers.migrations.0011_email_tracking_purpose").forward(apps, None)
    importlib.import_module("subscribers.migrations.0016_unsubscribe_permission").forward(apps, None)
    importlib.import_module("marketing.migrations.0006_reports").forward(apps, None)


@pytest.fixture
def consent_texts(seeded: None) -> dict[str, ConsentText]:
    """One published English text per seeded purpose, by purpose slug."""
    return {purpose.slug: publish_text(purpose) for purpose in Purpose.objects.all()}


@pytest.fixture
def confirmed_subscriber(consent_texts: dict[str, ConsentText]) -> Subscriber:
    """ada@example.org, signed up from 203.0.113.7 (Firefox/130) and confirmed, for the newsletter."""
    evidence = Evidence(
        source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130"
    )
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=evidence,
    )
    assert outcome.request is not None
    services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)
    return outcome.subscriber


# --- A real SMTP server -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """An aiosmtpd server on 127.0.0.1 that keeps every message it receives."""
    from aiosmtpd.controller import Controller

    server = SMTPServer(host="127.0.0.1", port=free_port())
    controller = Controller(server, hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


# --- A real Celery worker ---------------------------------------------------------------


def database_url_for_tests() -> str:
    """A ``DATABASE_URL`` for the test database this test process is using."""
    db = settings.DATABASES["default"]
    engine = db["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            pytest.fail("a worker process cannot share an in-memory SQLite test database")
        return f"sqlite:///{Path(name).resolve()}"
    if engine == "django.db.backends.postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"
    pytest.fail(f"no DATABASE_URL for a worker on {engine}")


@dataclass
class WorkerProcess:
    process: subprocess.Popen[str]
    log_path: Path
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def log(self) -> str:
        return "".join(self.lines)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        with self.log_path.open("w") as out:
            for line in self.process.stdout:
                self.lines.append(line)
                out.write(line)
                out.flush()
                if " ready." in line:
                    self.ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _check_broker() -> None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
    except Exception as exc:
        require_service("Celery broker", f"{settings.CELERY_BROKER_URL.split('@')[-1]}: {exc}")


@pytest.fixture
def start_celery_worker(
    request: pytest.FixtureRequest, transactional_db: None, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real ``celery worker`` processes on the test database: ``start(EMAIL_URL=..., ...)``.

    The worker reads the same broker as this process, writes to the same (test) database,
    and gets the keyword arguments as extra environment variables. Data must be committed
    for it to see it, hence ``transactional_db``; the test must be marked ``e2e`` so tasks
    go to the broker instead of running eagerly.
    """
    if celery_app.conf.task_always_eager:
        pytest.fail("mark the test @pytest.mark.e2e: tasks run eagerly otherwise")
    _check_broker()
    celery_app.control.purge()  # nothing left over from an earlier run
    workers: list[WorkerProcess] = []

    def start(**environment: str) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url_for_tests(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "DEBUG": "1",
            "SECRET_KEY": settings.SECRET_KEY,  # links signed there must verify here
            "PYTHONUNBUFFERED": "1",
            **environment,
        }
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            "celery",
            "-n",
            f"e2e-{uuid.uuid4().hex[:8]}@%h",
        ]
        process = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = WorkerProcess(process=process, log_path=tmp_path / f"celery-worker-{len(workers)}.log")
        workers.append(worker)
        threading.Thread(target=worker._pump, daemon=True).start()
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not worker.ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                worker.stop()
                pytest.fail(f"the Celery worker did not start:\n{worker.log()}")
        return worker

    yield start

    for worker in workers:
        worker.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        for worker in workers:
            if reporter is not None:
                reporter.write_sep("-", f"celery worker log ({worker.log_path})")
                reporter.write(worker.log() + "\n")


@pytest.fixture
def celery_worker_process(
    start_celery_worker: Callable[..., WorkerProcess], smtp_server: SMTPServer
) -> WorkerProcess:
    """A real Celery worker that sends email to ``smtp_server``."""
    return start_celery_worker(EMAIL_URL=smtp_server.url)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --- A real browser ---------------------------------------------------------------------


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    if not CHROMIUM.exists():
        require_service("chromium", f"{CHROMIUM} is missing; apt-get install chromium")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        require_service("playwright", str(exc))
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # meanwhile are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
        except PlaywrightError as exc:
            require_service("chromium", f"it did not start: {exc}")
        try:
            yield chromium
        finally:
            # The ORM calls made inside Playwright's context got their own connections
            # (Django keeps them per context); close them, or PostgreSQL refuses to
            # drop the test database at the end.
            connections.close_all()
            chromium.close()

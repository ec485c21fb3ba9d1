"""A local Mailgun for the bench: the test suite's ``tests.e2e.mailgun_server``, counting.

The test server answers exactly as Mailgun's batch send API does (authentication, domain,
the 1,000-recipient limit, ``recipient-variables``) and also keeps every call and expands
every recipient's copy, which a million recipients cannot afford. ``CountingMailgun`` keeps
the same checks and answers but only counts calls and recipients, and the CPU time it spent
(it shares the machine with the workers; a real provider would not).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.mailgun_server import MailgunServer, _handler

API_KEY = "key-bench"
DOMAIN = "mg.bench.example.com"


@dataclass
class CountingMailgun(MailgunServer):
    accepted_calls: int = 0
    accepted_recipients: int = 0
    refused_calls: int = 0
    cpu_seconds: float = 0.0
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(
        self, path: str, authorization: str | None, fields: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        status, headers, payload = self._answer(path, authorization, fields)
        # One "to" field per recipient, as anymail sends them (not parsed: a real provider's
        # parsing would not run on this machine).
        recipients = sum(1 for name, _value in fields if name == "to") if status == 200 else 0
        with self._count_lock:
            if status == 200:
                self.accepted_calls += 1
                self.accepted_recipients += recipients
            else:
                self.refused_calls += 1
        return status, headers, payload

    def add_cpu(self, seconds: float) -> None:
        with self._count_lock:
            self.cpu_seconds += seconds

    def snapshot(self) -> tuple[int, int, int]:
        with self._count_lock:
            return self.accepted_calls, self.accepted_recipients, self.refused_calls


def _timed_handler(state: CountingMailgun) -> type[BaseHTTPRequestHandler]:
    base = _handler(state)

    class Handler(base):  # type: ignore[valid-type, misc]
        def do_POST(self) -> None:
            # Parsing the form, checking it and answering: what this machine spends as "Mailgun".
            started = time.thread_time()
            try:
                super().do_POST()
            finally:
                state.add_cpu(time.thread_time() - started)

    return Handler


@contextmanager
def serve() -> Iterator[CountingMailgun]:
    """A ``CountingMailgun`` on a free port of 127.0.0.1 for the duration of the block."""
    state = CountingMailgun(api_key=API_KEY, domain=DOMAIN)
    httpd = ThreadingHTTPServer((state.host, 0), _timed_handler(state))
    httpd.daemon_threads = True
    state.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

"""A local Mailgun for the bench: a sink that answers as Mailgun's batch send API does.

The test suite's server (``tests.e2e.mailgun_server``) checks every field and expands every
recipient's copy, which a million recipients cannot afford. ``CountingMailgun`` shares its
checks of the credentials, the domain, throttling and its answers, counts calls and
recipients without decoding the form (``answer_form``), and notes the CPU time it spent (it
shares the machine with the workers; a real provider would not).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.json_answer import send_json
from tests.e2e.mailgun_server import MAX_RECIPIENTS, MailgunServer

API_KEY = "key-bench"
DOMAIN = "mg.bench.example.com"


@dataclass
class CountingMailgun(MailgunServer):
    accepted_calls: int = 0
    accepted_recipients: int = 0
    refused_calls: int = 0
    cpu_seconds: float = 0.0
    _count_lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_form(
        self, path: str, authorization: str | None, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """A URL-encoded call, answered as ``MailgunServer.answer`` would, without decoding it.

        Like ``smtp-sink`` for SMTP, a sink: the credentials, the domain and the required
        fields are checked and the recipients counted (one ``to`` field each, as anymail
        sends them), but no field is decoded. Decoding a 1,000-recipient form is work the real
        provider does on its own machines, not on the two cores measured (it was ~26 s of
        their CPU in a 1M run). ``tests/e2e/mailgun_server.py`` checks every field.
        """
        answer = self._gate(path, authorization)
        recipients = body.startswith(b"to=") + body.count(b"&to=")
        if answer is None:
            has = lambda name: body.startswith(name + b"=") or b"&" + name + b"=" in body  # noqa: E731
            if not has(b"from") or not recipients or not (has(b"text") or has(b"html")):
                answer = 400, {}, {"message": "from, to and text or html are required"}
            elif recipients > MAX_RECIPIENTS:
                answer = 400, {}, {"message": f"Too many recipients: at most {MAX_RECIPIENTS} per message"}
            else:
                answer = self.accepted()
        with self._count_lock:
            if answer[0] == 200:
                self.accepted_calls += 1
                self.accepted_recipients += recipients
            else:
                self.refused_calls += 1
        return answer

    def add_cpu(self, seconds: float) -> None:
        with self._count_lock:
            self.cpu_seconds += seconds

    def snapshot(self) -> tuple[int, int, int]:
        with self._count_lock:
            return self.accepted_calls, self.accepted_recipients, self.refused_calls


def _sink_handler(state: CountingMailgun) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            # What this machine spends as "Mailgun": reading the call and answering it.
            started = time.thread_time()
            try:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                    answer = state.answer_form(path, self.headers.get("Authorization"), body)
                else:
                    answer = 400, {}, {"message": "the bench's sink reads URL-encoded forms"}
                status, headers, payload = answer
                send_json(self, status, headers, payload)
            finally:
                state.add_cpu(time.thread_time() - started)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[CountingMailgun]:
    """A ``CountingMailgun`` on a free port of 127.0.0.1 for the duration of the block."""
    state = CountingMailgun(api_key=API_KEY, domain=DOMAIN)
    httpd = ThreadingHTTPServer((state.host, 0), _sink_handler(state))
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

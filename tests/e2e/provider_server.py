"""A local stand-in for Postmark's email API, as django-anymail's Postmark backend calls it.

It speaks the documented endpoints anymail uses for plain (non-template) sends:

``POST /email``
    One message; answers one JSON object.
``POST /email/batch``
    A JSON list of up to 500 messages; answers HTTP 200 with a list, one entry per message,
    in order, each with its own ``ErrorCode``.

Every request must carry ``X-Postmark-Server-Token``; without the right one the answer is
HTTP 401 with ErrorCode 10, as Postmark does. An accepted message is answered with
``{"To", "SubmittedAt", "MessageID", "ErrorCode": 0, "Message": "OK"}`` and recorded.

Faults a test can program (https://postmarkapp.com/developer/api/overview#response-codes):

- ``throttle(n, retry_after=…)``: the next ``n`` requests get HTTP 429 with ``Retry-After``.
- ``fail(n)``: the next ``n`` requests get HTTP 500.
- ``reject(address, …)``: those recipients are refused as inactive (ErrorCode 406); on
  ``/email`` that is HTTP 422, in a batch it is that message's entry; the rest are accepted.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from tests.e2e.json_answer import send_json

# Postmark's wording, which anymail parses to find the refused addresses.
INACTIVE_MESSAGE = (
    "You tried to send to recipient(s) that have been marked as inactive.\n"
    "Found inactive addresses: {addresses}.\n"
    "Inactive recipients are ones that have generated a hard bounce, a spam complaint, "
    "or a manual suppression. "
)


@dataclass
class ProviderMessage:
    """One message the provider accepted, as it was posted."""

    to: str
    subject: str
    html_body: str
    text_body: str
    headers: list[dict[str, str]]
    message_id: str
    received_at: float
    data: dict[str, Any]

    @property
    def address(self) -> str:
        return getaddresses([self.to])[0][1].lower()

    def header(self, name: str) -> str | None:
        for item in self.headers:
            if item.get("Name", "").lower() == name.lower():
                return item.get("Value")
        return None


@dataclass
class Request:
    """One API call and the HTTP status it was answered with."""

    path: str
    status: int
    at: float
    recipients: list[str]

    @property
    def addresses(self) -> list[str]:
        return [addr.lower() for _name, addr in getaddresses(self.recipients) if addr]


@dataclass
class PostmarkServer:
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[ProviderMessage] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    _throttled: int = 0
    _retry_after: str = "1"
    _failing: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def email_url(self) -> str:
        """``EMAIL_URL`` that points anymail's Postmark backend here."""
        return f"anymail+postmark://?server_token={quote(self.token)}&api_url={quote(self.api_url, safe='')}"

    # --- Faults -----------------------------------------------------------------------

    def throttle(self, count: int, *, retry_after: float = 1) -> None:
        with self._lock:
            self._throttled, self._retry_after = count, f"{retry_after:g}"

    def fail(self, count: int) -> None:
        with self._lock:
            self._failing = count

    def reject(self, *addresses: str) -> None:
        with self._lock:
            self.rejected.update(a.lower() for a in addresses)

    # --- Reading what arrived ---------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ProviderMessage]:
        """The first ``count`` accepted messages, waiting up to ``timeout`` seconds."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.messages) >= count, timeout=timeout):
                raise TimeoutError(f"the provider accepted {len(self.messages)} message(s), expected {count}")
            return list(self.messages[:count])

    # --- The API ----------------------------------------------------------------------

    def answer(self, path: str, token: str | None, body: bytes) -> tuple[int, dict[str, str], Any]:
        """HTTP status, extra headers and JSON body for one request."""
        with self._lock:
            status, headers, payload, recipients = self._answer(path, token, body)
            self.requests.append(Request(path=path, status=status, at=time.time(), recipients=recipients))
            self._lock.notify_all()
            return status, headers, payload

    def _answer(
        self, path: str, token: str | None, body: bytes
    ) -> tuple[int, dict[str, str], Any, list[str]]:
        if path not in ("/email", "/email/batch"):
            return 404, {}, {"ErrorCode": 404, "Message": f"No endpoint {path} here."}, []
        if token != self.token:
            message = "Request does not contain a valid Server token."
            return 401, {}, {"ErrorCode": 10, "Message": message}, []
        try:
            data = json.loads(body)
        except ValueError:
            return 400, {}, {"ErrorCode": 402, "Message": "Received invalid JSON input."}, []
        batch = path == "/email/batch"
        if batch != isinstance(data, list):
            return 422, {}, {"ErrorCode": 300, "Message": "Invalid email request."}, []
        items: list[dict[str, Any]] = data if batch else [data]
        recipients = [str(item.get("To", "")) for item in items]
        if self._throttled:
            self._throttled -= 1
            message = "Rate limit exceeded."
            return 429, {"Retry-After": self._retry_after}, {"ErrorCode": 429, "Message": message}, recipients
        if self._failing:
            self._failing -= 1
            return 500, {}, {"ErrorCode": 500, "Message": "Internal server error."}, recipients
        results = [self._accept(item) for item in items]
        if batch:
            return 200, {}, results, recipients
        [result] = results
        return (422 if result["ErrorCode"] else 200), {}, result, recipients

    def _accept(self, item: dict[str, Any]) -> dict[str, Any]:
        to = str(item.get("To", ""))
        addresses = [addr.lower() for _name, addr in getaddresses([to]) if addr]
        if not addresses:
            return {"ErrorCode": 300, "Message": "Invalid 'To' address: ''."}
        inactive = [a for a in addresses if a in self.rejected]
        if inactive:
            return {"ErrorCode": 406, "Message": INACTIVE_MESSAGE.format(addresses=", ".join(inactive))}
        message = ProviderMessage(
            to=to,
            subject=str(item.get("Subject", "")),
            html_body=str(item.get("HtmlBody", "")),
            text_body=str(item.get("TextBody", "")),
            headers=list(item.get("Headers", [])),
            message_id=str(uuid.uuid4()),
            received_at=time.time(),
            data=item,
        )
        self.messages.append(message)
        return {
            "To": to,
            "SubmittedAt": datetime.now(UTC).isoformat(),
            "MessageID": message.message_id,
            "ErrorCode": 0,
            "Message": "OK",
        }


def _handler(server: PostmarkServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            status, headers, payload = server.answer(path, self.headers.get("X-Postmark-Server-Token"), body)
            send_json(self, status, headers, payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet; ``server.requests`` has the log

    return Handler


def serve(*, token: str) -> Iterator[PostmarkServer]:
    """Run a ``PostmarkServer`` on a free port of 127.0.0.1 until the generator is closed."""
    state = PostmarkServer(token=token)
    httpd = ThreadingHTTPServer((state.host, 0), _handler(state))
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

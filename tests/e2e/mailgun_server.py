"""A local stand-in for Mailgun's send API, as django-anymail's Mailgun backend calls it.

``POST {api_url}/{domain}/messages`` (https://documentation.mailgun.com/docs/mailgun/api-reference/
openapi-final/tag/Messages/): a form, URL-encoded or multipart, with ``from``, ``to`` (repeated,
up to 1,000), ``subject``, ``text``, ``html``, ``h:<Header>`` and ``v:<variable>`` fields and,
for a batch send, ``recipient-variables``: a JSON object with one object of variables per
``to`` address. Mailgun then sends every ``to`` address its own copy, with each
``%recipient.<name>%`` in the subject, bodies and headers replaced by that address's value;
anymail's ``merge_headers`` arrive as ``h:<Header>: %recipient.h:<Header>%`` and
``merge_metadata`` as ``v:<key>: %recipient.v:<key>%``.

Authentication is HTTP basic ``api:<key>``; without it the answer is HTTP 401 ``Forbidden``.
An unknown domain is HTTP 404 ``Domain not found``. An accepted call is answered
``{"id": "<…@domain>", "message": "Queued. Thank you."}``; the server records the call
(``calls``) and expands each recipient's copy (``messages``) as Mailgun would deliver it.

Faults a test can program: ``throttle(n, retry_after=…)`` (HTTP 429) and ``fail(n)`` (HTTP 500);
``refuse(address, …)``: a call naming any of them is refused whole with HTTP 400 "'to' parameter
is not a valid address", as Mailgun answers a batch with one address it does not accept; and
transport faults through ``faults`` (``transport_faults.FaultPlan``: a reset connection, an
answer that comes after the client's timeout).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from tests.e2e.json_answer import send_json
from tests.e2e.transport_faults import FaultPlan, reset

# An HTTP status, extra headers and the JSON body.
Answer = tuple[int, dict[str, str], dict[str, Any]]
MAX_RECIPIENTS = 1000  # per call, Mailgun's documented batch limit
RECIPIENT_VARIABLE = re.compile(r"%recipient\.([^%\s]+)%")


@dataclass
class Call:
    """One API call, its form fields in order, and the HTTP status it was answered with."""

    path: str
    status: int
    at: float
    fields: list[tuple[str, str]]
    message_id: str = ""

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def getlist(self, name: str) -> list[str]:
        return [value for key, value in self.fields if key == name]

    @property
    def addresses(self) -> list[str]:
        return [addr.lower() for _name, addr in getaddresses(self.getlist("to")) if addr]


@dataclass
class DeliveredMessage:
    """One recipient's copy of an accepted call, with recipient variables substituted."""

    to: str
    subject: str
    text: str
    html: str
    headers: dict[str, str]
    variables: dict[str, str]
    message_id: str
    received_at: float

    @property
    def address(self) -> str:
        return getaddresses([self.to])[0][1].lower()

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class MailgunServer:
    api_key: str
    domain: str
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[Call] = field(default_factory=list)
    messages: list[DeliveredMessage] = field(default_factory=list)
    _throttled: int = 0
    _retry_after: str = "1"
    _failing: int = 0
    refused: set[str] = field(default_factory=set)
    faults: FaultPlan = field(default_factory=FaultPlan)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/v3/"

    @property
    def email_url(self) -> str:
        """``EMAIL_URL`` that points anymail's Mailgun backend here."""
        return (
            f"anymail+mailgun://?api_key={quote(self.api_key)}&sender_domain={quote(self.domain)}"
            f"&api_url={quote(self.api_url, safe='')}"
        )

    def throttle(self, count: int, *, retry_after: float = 1) -> None:
        with self._lock:
            self._throttled, self._retry_after = count, f"{retry_after:g}"

    def fail(self, count: int) -> None:
        with self._lock:
            self._failing = count

    def refuse(self, *addresses: str) -> None:
        with self._lock:
            self.refused.update(a.lower() for a in addresses)

    def record_unanswered(self, path: str, fields: list[tuple[str, str]]) -> None:
        """A call that met a transport fault: kept (status 0), nothing delivered."""
        with self._lock:
            self.calls.append(Call(path=path, status=0, at=time.time(), fields=fields))
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[DeliveredMessage]:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.messages) >= count, timeout=timeout):
                raise TimeoutError(f"Mailgun accepted {len(self.messages)} message(s), expected {count}")
            return list(self.messages[:count])

    # --- The API ----------------------------------------------------------------------

    def answer(
        self, path: str, authorization: str | None, fields: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            status, headers, payload = self._answer(path, authorization, fields)
            call = Call(path=path, status=status, at=time.time(), fields=fields)
            if status == 200:
                call.message_id = payload["id"]
                self.messages.extend(_expand(call))
            self.calls.append(call)
            self._lock.notify_all()
            return status, headers, payload

    def _answer(
        self, path: str, authorization: str | None, fields: list[tuple[str, str]]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        refusal = self._gate(path, authorization)
        if refusal is not None:
            return refusal
        return self._check_fields(fields)

    def _gate(self, path: str, authorization: str | None) -> Answer | None:
        """The answer to a call refused before its fields are read, if it is refused."""
        match = re.fullmatch(r"/v3/([^/]+)/messages", path)
        if match is None:
            return 404, {}, {"message": "Not Found"}
        if authorization != _basic("api", self.api_key):
            return 401, {}, {"message": "Forbidden"}
        if unquote(match.group(1)) != self.domain:
            return 404, {}, {"message": f"Domain not found: {unquote(match.group(1))}"}
        if self._throttled:
            self._throttled -= 1
            return 429, {"Retry-After": self._retry_after}, {"message": "Too many requests"}
        if self._failing:
            self._failing -= 1
            return 500, {}, {"message": "Internal Server Error"}
        return None

    def _check_fields(self, fields: list[tuple[str, str]]) -> tuple[int, dict[str, str], dict[str, Any]]:
        call = Call(path="", status=0, at=0, fields=fields)
        # anymail sends one "to" field per recipient. Parsed only when a test refuses some:
        # the email package's address parser costs more than the rest of a call.
        to = call.getlist("to")
        if not call.get("from"):
            return 400, {}, {"message": "from parameter is missing"}
        if not to:
            return 400, {}, {"message": "to parameter is missing"}
        if self.refused and self.refused & set(call.addresses):
            return 400, {}, {"message": "'to' parameter is not a valid address. please check documentation"}
        if len(to) > MAX_RECIPIENTS:
            return 400, {}, {"message": f"Too many recipients: at most {MAX_RECIPIENTS} per message"}
        if not (call.get("text") or call.get("html")):
            return 400, {}, {"message": "Need at least one of 'text' or 'html' parameters specified"}
        raw_variables = call.get("recipient-variables")
        if raw_variables is not None:
            try:
                variables = json.loads(raw_variables)
            except ValueError:
                return 400, {}, {"message": "recipient-variables parameter is not a valid JSON"}
            if not isinstance(variables, dict):
                return 400, {}, {"message": "recipient-variables parameter is not a valid JSON"}
        return self.accepted()

    def accepted(self) -> tuple[int, dict[str, str], dict[str, Any]]:
        message_id = f"<{time.strftime('%Y%m%d%H%M%S')}.{uuid.uuid4().hex[:12]}@{self.domain}>"
        return 200, {}, {"id": message_id, "message": "Queued. Thank you."}


def _expand(call: Call) -> list[DeliveredMessage]:
    """Each recipient's copy: one per ``to`` with recipient variables, else one shared copy each."""
    raw_variables = call.get("recipient-variables")
    by_address = {k.lower(): v for k, v in json.loads(raw_variables).items()} if raw_variables else {}
    everyone = ", ".join(call.getlist("to"))
    copies = []
    for to in call.getlist("to"):
        address = getaddresses([to])[0][1].lower()
        values = {key: str(value) for key, value in by_address.get(address, {}).items()}

        def fill(text: str, values: dict[str, str] = values) -> str:
            # One pass: a value that contains a tag is not expanded again.
            return RECIPIENT_VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)

        headers = {key[2:]: fill(value) for key, value in call.fields if key.startswith("h:")}
        headers["To"] = to if raw_variables else everyone
        copies.append(
            DeliveredMessage(
                to=to,
                subject=fill(call.get("subject") or ""),
                text=fill(call.get("text") or ""),
                html=fill(call.get("html") or ""),
                headers=headers,
                variables={key[2:]: fill(value) for key, value in call.fields if key.startswith("v:")},
                message_id=call.message_id,
                received_at=call.at,
            )
        )
    return copies


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _form_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of a URL-encoded or multipart/form-data body, in order (files are skipped)."""
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None or part.get_filename() is not None:
                continue
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""
            fields.append((str(name), payload.decode(part.get_content_charset() or "utf-8")))
        return fields
    return parse_qsl(body.decode(), keep_blank_values=True)


def _handler(server: MailgunServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            fields = _form_fields(self.headers.get("Content-Type", ""), body)
            fault = server.faults.take()
            if fault == "reset":
                server.record_unanswered(path, fields)
                self.close_connection = True
                reset(self.connection)
                return
            status, headers, payload = server.answer(path, self.headers.get("Authorization"), fields)
            if fault == "hang":
                time.sleep(server.faults.hang_seconds)
                self.close_connection = True
                return
            send_json(self, status, headers, payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output quiet; ``server.calls`` has the log

    return Handler


def serve(*, api_key: str, domain: str) -> Iterator[MailgunServer]:
    """Run a ``MailgunServer`` on a free port of 127.0.0.1 until the generator is closed."""
    state = MailgunServer(api_key=api_key, domain=domain)
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

"""Faults a local provider or SMTP server meets its next requests with, one each, in order.

``FaultPlan.add("reset", 2)`` makes the next two requests meet a reset connection; the
servers that take a plan (``mailgun_server.MailgunServer.faults``, ``FaultySMTPServer``)
ask ``take()`` once per request (an HTTP call, an SMTP DATA command) and act it out:

``"reset"``
    The TCP connection is closed with a RST (SO_LINGER 0), no answer: the client sees
    "connection reset by peer", as when a load balancer or the provider's process dies.
``"hang"``
    HTTP: the call is accepted and recorded, then the answer waits ``hang_seconds``, past
    the client's timeout: the client cannot know the messages went out.
``"451"``, ``"421"``
    SMTP: a temporary refusal of the message (451), or the server closing the session (421).
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.smtp_server import SMTPServer


@dataclass
class FaultPlan:
    hang_seconds: float = 3.0
    injected: Counter[str] = field(default_factory=Counter)
    _queue: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._queue.extend([kind] * count)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self) -> str | None:
        with self._lock:
            if not self._queue:
                return None
            kind = self._queue.popleft()
            self.injected[kind] += 1
            return kind


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST instead of an orderly FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass
class FaultySMTPServer(SMTPServer):
    """``SMTPServer`` that refuses ``refused`` recipients (550) and acts out ``faults`` on DATA."""

    faults: FaultPlan = field(default_factory=FaultPlan)
    refused: set[str] = field(default_factory=set)
    attempts: list[str] = field(default_factory=list)  # recipient of every DATA, faulted or not

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 The email account that you tried to reach does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts.extend(envelope.rcpt_tos)
        kind = self.faults.take()
        if kind == "451":
            return "451 4.3.0 Temporary server error, please try again later"
        if kind == "421":
            server.transport.close()
            return "421 4.3.2 Service shutting down"
        if kind == "reset":
            sock = server.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.transport.abort()
            return "451 never seen"
        return await super().handle_DATA(server, session, envelope)

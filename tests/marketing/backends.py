"""Email backends that misbehave on purpose, for dispatch's unit tests.

End-to-end tests use a real SMTP server and a real provider API instead (tests/e2e).
"""

from __future__ import annotations

import smtplib
from typing import ClassVar

from django.core import mail
from django.core.mail.backends.locmem import EmailBackend


class ScriptedBackend(EmailBackend):
    """locmem, but fails as told: ``failures`` is consumed one per message sent."""

    failures: ClassVar[list[Exception | None]] = []
    refused: ClassVar[set[str]] = set()

    def send_messages(self, messages):
        for message in messages:
            if message.to[0] in self.refused:
                raise smtplib.SMTPRecipientsRefused({message.to[0]: (550, b"no such user")})
            if self.failures:
                failure = self.failures.pop(0)
                if failure is not None:
                    raise failure
        return super().send_messages(messages)


def sent_to() -> list[str]:
    return [m.to[0] for m in mail.outbox]

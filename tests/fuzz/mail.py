"""Checks on a message as it would leave: its header block, read back from the bytes."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage as ParsedMessage

from django.core.mail import EmailMessage

TRANSACTIONAL_HEADERS = {
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
}
CAMPAIGN_HEADERS = (TRANSACTIONAL_HEADERS - {"auto-submitted"}) | {
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-id",
    "x-campaign-id",
}
_HEADER_LINE = re.compile(rb"\A([!-9;-~]+):")


def parsed(message: EmailMessage) -> ParsedMessage:
    raw = message.message().as_bytes()
    return email.message_from_bytes(raw, policy=email.policy.default)


def header_names(raw: bytes) -> list[str]:
    """The names of the top-level headers in ``raw``, in order; fails on a line that is neither
    a header nor a continuation, or on a CR or NUL anywhere in the block."""
    block = raw.split(b"\n\n", 1)[0]
    assert b"\r" not in block and b"\x00" not in block, block
    names = []
    for line in block.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            continue  # folded continuation of the header above
        match = _HEADER_LINE.match(line)
        assert match, line
        names.append(match.group(1).decode().lower())
    return names


def assert_headers_clean(message: EmailMessage, *, to: str, allowed: set[str]) -> ParsedMessage:
    """Only the headers we set, each once, and one recipient: ``to``."""
    assert message.to == [to], message.to
    assert not message.cc and not message.bcc
    raw = message.message().as_bytes()
    names = header_names(raw)
    assert set(names) <= allowed, set(names) - allowed
    assert len(names) == len(set(names)), names
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    recipients = [a.addr_spec for a in mail["to"].addresses]
    assert recipients == [to], recipients
    return mail

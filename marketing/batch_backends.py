"""anymail's batch-capable backends, minus most of the cost of reading 1,000 ``to`` addresses.

anymail turns every ``to`` string into an ``EmailAddress`` with ``parse_address_list``:
``email.utils.getaddresses``, then ``email.headerregistry.Address(addr_spec=…)``, which runs
the RFC 5322 header parser once more. For a batch of 1,000 that was about a quarter of a
worker's CPU per recipient (cProfile at a million recipients). Dispatch hands over plain
``local@domain`` strings (``subscribers.addresses.smtp_address``), mostly dot-atoms in
ASCII: for those the parse is a split at the ``@``, and ``EmailAddress(username=…,
domain=…)`` is built without any parsing. Anything else (a display name, a quoted local
part, non-ASCII, a domain literal) still goes through anymail's own parser, so the payload
is the one anymail would build (tests/marketing/test_batching.py compares them).

Mailgun's form is URL-encoded by ``requests``, through ``urllib.parse.quote_plus``: one
Python step per byte of a ~300 KB form (every recipient's variables as one JSON field), the
next largest cost. ``form_urlencoded`` writes the same bytes from a table, in about half
the time.

Only dispatch's batch call uses these (``connection``); every other message is sent with
``settings.EMAIL_BACKEND`` as configured.
"""

from __future__ import annotations

import re
from typing import Any

from anymail.backends import mailgun, sendgrid
from anymail.backends.base import BasePayload
from anymail.utils import EmailAddress, parse_address_list
from django.conf import settings
from django.core.mail import get_connection

# RFC 5322 §3.2.3 dot-atom local part; a domain of LDH labels (RFC 1035 §2.3.1).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)")


def plain_address_list(addresses: Any) -> list[EmailAddress]:
    """``parse_address_list(addresses, field="to")``, with plain addresses split, not parsed."""
    if isinstance(addresses, str) or not isinstance(addresses, (list, tuple)):
        return parse_address_list(addresses, field="to")
    parsed: list[EmailAddress] = []
    for address in addresses:
        match = _PLAIN.fullmatch(address) if type(address) is str else None
        if match is None:
            parsed += parse_address_list([address], field="to")
        else:
            parsed.append(EmailAddress(username=match[1], domain=match[2]))
    return parsed


_MESSAGE_ATTRS = tuple(
    (attr, combiner, plain_address_list if attr == "to" else converter)
    for attr, combiner, converter in BasePayload.base_message_attrs
)


# What ``quote_plus(…, safe="")`` makes of each byte (RFC 3986 unreserved stay, space is "+").
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_QUOTED = [chr(b) if b in _UNRESERVED else "+" if b == 0x20 else f"%{b:02X}" for b in range(256)]


def _quote(value: Any) -> str:
    data = value if isinstance(value, bytes) else str(value).encode()
    return "".join(map(_QUOTED.__getitem__, data))


def form_urlencoded(data: dict[str, Any]) -> bytes:
    """The body ``requests`` makes of ``data=`` (``RequestEncodingMixin._encode_params``):
    a list value repeats its key, None values are left out."""
    pairs = []
    for key, values in data.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        for value in values:
            if value is not None:
                pairs.append(f"{_quote(key)}={_quote(value)}")
    return "&".join(pairs).encode("ascii")


class MailgunPayload(mailgun.MailgunPayload):
    base_message_attrs = _MESSAGE_ATTRS

    def get_request_params(self, api_url: str) -> dict[str, Any]:
        params: dict[str, Any] = super().get_request_params(api_url)
        if not self.files:  # with attachments requests sends multipart/form-data
            params["data"] = form_urlencoded(params["data"])
            params["headers"] = {
                **(params["headers"] or {}),
                "Content-Type": "application/x-www-form-urlencoded",
            }
        return params


class MailgunBackend(mailgun.EmailBackend):
    def build_message_payload(self, message: Any, defaults: Any) -> MailgunPayload:
        return MailgunPayload(message, defaults, self)


class SendGridPayload(sendgrid.SendGridPayload):
    base_message_attrs = _MESSAGE_ATTRS


class SendGridBackend(sendgrid.EmailBackend):
    def build_message_payload(self, message: Any, defaults: Any) -> SendGridPayload:
        return SendGridPayload(message, defaults, self)


FASTER = {
    "anymail.backends.mailgun.EmailBackend": f"{__name__}.MailgunBackend",
    "anymail.backends.sendgrid.EmailBackend": f"{__name__}.SendGridBackend",
}


def connection() -> Any:
    """A connection of ``settings.EMAIL_BACKEND``, or of its subclass above where there is one."""
    return get_connection(FASTER.get(settings.EMAIL_BACKEND, settings.EMAIL_BACKEND))

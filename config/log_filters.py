"""Keep personal data out of the logs: addresses, IPs and link tokens are masked in every record.

The code never logs an address, IP or token on purpose (subscribers are named by id); this
filter catches what frameworks log on their own, such as the request line of a
preference-centre link in the development server's access log, a refused address quoted
in an SMTP error, or the traceback of a failed task. It is on the console handler of
Django's ``LOGGING`` and on every handler Celery sets up (``config.celery``).
"""

from __future__ import annotations

import logging
import re

_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# The path segment after a link prefix is a signed token: a credential.
_TOKEN_PATH = re.compile(r"(/(?:u|t|preferences|confirm|email-change|manage)/)[^/\s\"'?]+")
_HEX4 = r"[0-9A-Fa-f]{1,4}"
# IPv6: eight groups, or fewer around a "::" (which also covers ::1 and ::ffff:192.0.2.1).
# Not after or before a word character or colon, so "std::string" and "12:30:45" stay.
_IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_HEX4}:){{7}}{_HEX4}"
    rf"|(?:{_HEX4}(?::{_HEX4}){{0,6}})?::(?:{_HEX4}(?::{_HEX4}){{0,6}})?(?:\.\d{{1,3}}){{0,3}})(?![\w:])"
)
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def redact(text: str) -> str:
    text = _ADDRESS.sub("[address]", text)
    text = _TOKEN_PATH.sub(r"\1[token]", text)
    text = _IPV6.sub("[ip]", text)
    return _IPV4.sub("[ip]", text)


class RedactPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            # A traceback quotes the exception (an SMTP refusal names the address): the
            # formatter uses exc_text when it is set, so set it, masked.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True

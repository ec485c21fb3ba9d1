"""Keep personal data out of the logs: addresses and link tokens are masked in every record.

The code never logs an address, IP or token on purpose (subscribers are named by id); this
filter catches what frameworks log on their own, such as the request line of a
preference-centre link in the development server's access log, or a refused address
quoted in an SMTP error.
"""

from __future__ import annotations

import logging
import re

_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# The path segment after a link prefix is a signed token: a credential.
_TOKEN_PATH = re.compile(r"(/(?:u|preferences|confirm|email-change|manage)/)[^/\s\"'?]+")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def redact(text: str) -> str:
    text = _ADDRESS.sub("[address]", text)
    text = _TOKEN_PATH.sub(r"\1[token]", text)
    return _IPV4.sub("[ip]", text)


class RedactPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

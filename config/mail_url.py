"""Turn ``EMAIL_URL`` into Django email settings.

Accepted forms (see README, "Email"):

``outbox://`` or ``outbox:///abs/dir``
    Write every message as an ``.eml`` file that staff read at ``/outbox/``.
``smtp://user:pass@host:port``, ``smtp+tls://…`` (STARTTLS), ``smtps://…`` (implicit TLS)
    Any SMTP server.
``anymail+<esp>://?setting=value&…``
    Any provider django-anymail supports (``mailgun``, ``postmark``, ``sendgrid``,
    ``amazon_ses`` …). Each query parameter becomes the anymail setting
    ``<ESP>_<PARAM>``, so ``anymail+mailgun://?api_key=K&api_url=http://127.0.0.1:9000/v3/``
    sets ``MAILGUN_API_KEY`` and ``MAILGUN_API_URL``.
``console://``, ``locmem://``
    Print to the console; keep in memory (tests).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

OUTBOX_BACKEND = "config.outbox.OutboxBackend"


@dataclass
class MailSettings:
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    anymail: dict[str, str] = field(default_factory=dict)
    outbox_dir: Path | None = None


def parse_email_url(url: str, *, default_outbox: Path) -> MailSettings:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "outbox":
        folder = Path(unquote(parts.path)) if parts.path not in ("", "/") else default_outbox
        return MailSettings(backend=OUTBOX_BACKEND, outbox_dir=folder)
    if scheme in ("smtp", "smtp+tls", "smtps"):
        if not parts.hostname:
            raise ImproperlyConfigured(f"EMAIL_URL {scheme}:// needs a host, e.g. smtp://localhost:25")
        settings: dict[str, Any] = {
            "EMAIL_HOST": parts.hostname,
            "EMAIL_PORT": parts.port or (465 if scheme == "smtps" else 25),
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": scheme == "smtp+tls",
            "EMAIL_USE_SSL": scheme == "smtps",
        }
        query = dict(parse_qsl(parts.query))
        if "timeout" in query:
            settings["EMAIL_TIMEOUT"] = float(query["timeout"])
        return MailSettings(backend="django.core.mail.backends.smtp.EmailBackend", settings=settings)
    if scheme.startswith("anymail+"):
        esp = scheme.removeprefix("anymail+").replace("-", "_")
        module = f"anymail.backends.{esp}"
        if importlib.util.find_spec(module) is None:
            raise ImproperlyConfigured(f"EMAIL_URL names an email provider anymail does not know: {esp!r}")
        anymail = {f"{esp.upper()}_{key.upper()}": value for key, value in parse_qsl(parts.query)}
        return MailSettings(backend=f"{module}.EmailBackend", anymail=anymail)
    if scheme == "console":
        return MailSettings(backend="django.core.mail.backends.console.EmailBackend")
    if scheme == "locmem":
        return MailSettings(backend="django.core.mail.backends.locmem.EmailBackend")
    raise ImproperlyConfigured(
        f"EMAIL_URL scheme {scheme!r} is not supported: use outbox://, smtp://, smtp+tls://, "
        "smtps://, anymail+<provider>://, console:// or locmem://"
    )

"""Webhook payloads in each provider's documented format, and posting them as the provider does.

Formats follow the providers' documentation and django-anymail's own webhook tests:
- Mailgun: JSON ``{"signature": {timestamp, token, signature}, "event-data": {...}}``, the
  signature HMAC-SHA256 of timestamp + token with the webhook signing key; the per-message
  variables come back as ``user-variables``; ``message-id`` without angle brackets.
- SendGrid: a JSON list of events; custom args (our metadata) merged into each event.
- Postmark: one JSON object per event, ``RecordType`` Bounce / SpamComplaint / Delivery /
  SubscriptionChange / Open / Click, our metadata in ``Metadata``.
All three authenticate with HTTP basic auth (``ANYMAIL_WEBHOOK_SECRET``) in the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

SECRET = "hooks:s3cret-for-tests"
MAILGUN_SIGNING_KEY = "key-mailgun-webhook-signing-for-tests"
TIMESTAMP = 1767360000  # 2026-01-02 13:20 UTC


def auth(secret: str = SECRET) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(secret.encode()).decode()}


def post(client: Any, provider: str, payload: Any, *, secret: str = SECRET, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps(payload)
    return client.post(
        f"/anymail/{provider}/tracking/", data=body, content_type="application/json", **auth(secret)
    )


def metadata(delivery: Any) -> dict[str, str]:
    """What dispatch puts in each message's anymail metadata."""
    return {"delivery_id": str(delivery.pk), "campaign_id": str(delivery.campaign_id)}


# --- Mailgun ----------------------------------------------------------------------------


def mailgun_sign(payload: dict[str, Any], key: str = MAILGUN_SIGNING_KEY) -> dict[str, Any]:
    signature = payload.setdefault("signature", {})
    token = signature.setdefault("token", secrets.token_hex(25))
    timestamp = signature.setdefault("timestamp", str(TIMESTAMP))
    signature["signature"] = hmac.new(
        key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return payload


def mailgun(
    event: str,
    *,
    recipient: str,
    message_id: str,
    variables: dict[str, str] | None = None,
    event_id: str | None = None,
    timestamp: float = TIMESTAMP + 0.25,
    key: str = MAILGUN_SIGNING_KEY,
    **event_data: Any,
) -> dict[str, Any]:
    """A signed Mailgun event ("delivered", "failed" with severity and reason, "complained" …)."""
    data: dict[str, Any] = {
        "id": event_id or secrets.token_urlsafe(16),
        "timestamp": timestamp,
        "log-level": "info",
        "event": event,
        "recipient": recipient,
        "recipient-domain": recipient.rpartition("@")[2],
        "tags": [],
        "campaigns": [],
        "user-variables": variables or {},
        "flags": {
            "is-routed": False,
            "is-authenticated": True,
            "is-system-test": False,
            "is-test-mode": False,
        },
        "envelope": {"sender": "news@example.com", "transport": "smtp", "targets": recipient},
        "message": {
            "headers": {
                "to": recipient,
                "message-id": message_id.strip("<>"),
                "from": "Example Newsletter <news@example.com>",
                "subject": "News",
            },
            "attachments": [],
            "size": 2048,
        },
    }
    data.update(event_data)
    return mailgun_sign({"event-data": data}, key)


def mailgun_hard_bounce(**kwargs: Any) -> dict[str, Any]:
    status = {
        "tls": True,
        "mx-host": "aspmx.l.example.org",
        "attempt-no": 1,
        "description": "",
        "code": 550,
        "message": f"5.1.1 <{kwargs['recipient']}>: The email account that you tried to reach does not exist",
    }
    extra: dict[str, Any] = {"severity": "permanent", "reason": "bounce", "log-level": "error"}
    return mailgun("failed", **{**extra, "delivery-status": status, **kwargs})


def mailgun_temporary_failure(**kwargs: Any) -> dict[str, Any]:
    status = {
        "attempt-no": 2,
        "description": "Mailbox full",
        "retry-seconds": 1800,
        "code": 452,
        "message": "4.2.2 The email account that you tried to reach is over quota.",
    }
    extra: dict[str, Any] = {"severity": "temporary", "reason": "generic", "log-level": "warn"}
    return mailgun("failed", **{**extra, "delivery-status": status, **kwargs})


# --- SendGrid ---------------------------------------------------------------------------


def sendgrid(event: str, *, email: str, anymail_id: str, custom: dict[str, str] | None = None, **fields: Any):
    """One SendGrid event (post a list of them)."""
    record = {
        "email": email,
        "timestamp": TIMESTAMP,
        "smtp-id": f"<{secrets.token_urlsafe(12)}@ismtpd0001p1lon1.sendgrid.net>",
        "sg_event_id": secrets.token_urlsafe(16),
        "sg_message_id": f"{secrets.token_urlsafe(16)}.filter0001p1las1.1234.5717FC482.0",
        "event": event,
        "anymail_id": anymail_id,
        **(custom or {}),
    }
    record.update(fields)
    return record


# --- Postmark ---------------------------------------------------------------------------


def postmark_bounce(*, email: str, message_id: str, type_: str = "HardBounce", meta=None, bounce_id=None):
    names = {"HardBounce": ("Hard bounce", 1), "SoftBounce": ("Soft bounce", 4096)}
    name, code = names.get(type_, (type_, 0))
    return {
        "RecordType": "Bounce",
        "ID": bounce_id or secrets.randbelow(10**9),
        "Type": type_,
        "TypeCode": code,
        "Name": name,
        "Tag": "",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": f"smtp;550 5.1.1 <{email}>: The email account that you tried to reach does not exist.",
        "Email": email,
        "From": "news@example.com",
        "BouncedAt": "2026-01-02T13:20:05.3963933Z",
        "DumpAvailable": True,
        "Inactive": type_ == "HardBounce",
        "CanActivate": True,
        "Subject": "News",
        "Metadata": meta or {},
    }


def postmark_spam_complaint(*, email: str, message_id: str, meta=None):
    return {
        "RecordType": "SpamComplaint",
        "ID": secrets.randbelow(10**9),
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "",
        "Details": "Test spam complaint details",
        "Email": email,
        "From": "news@example.com",
        "BouncedAt": "2026-01-02T13:25:00Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "News",
        "Metadata": meta or {},
    }


def postmark_delivery(*, email: str, message_id: str, meta=None, at: str = "2026-01-02T13:20:10Z"):
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Recipient": email,
        "Tag": "",
        "DeliveredAt": at,
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": meta or {},
    }


def postmark_unsubscribe(*, email: str, message_id: str, meta=None):
    return {
        "RecordType": "SubscriptionChange",
        "MessageID": message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-01-02T14:00:00Z",
        "Recipient": email,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "",
        "Metadata": meta or {},
    }

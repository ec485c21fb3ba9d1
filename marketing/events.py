"""Provider events, normalised: what anymail reports, reduced to what we keep and act on.

``normalise(event, esp_name)`` turns one ``anymail.signals.AnymailTrackingEvent`` into a
``ProviderEvent``: plain, bounded strings; the delivery and campaign ids we put in the
message's metadata (``batching.DELIVERY_ID``); whether a bounce is hard or soft; and a
dedupe key, so the same event posted twice is stored once.

Hard or soft (anymail's ``reject_reason``, https://anymail.dev/en/stable/sending/tracking/):
``deferred`` is soft. ``bounced`` is hard when the reason is ``bounced`` or ``invalid``
(or not given) and soft otherwise (``timed_out``, ``blocked``, ``spam``, ``other``), except
where the provider's own payload says soft and anymail does not pass it on (Postmark's
``SoftBounce``, SendGrid's ``blocked``, Mandrill's ``soft_bounce``). ``rejected`` is hard
only for a bad mailbox (``bounced``, ``invalid``): the provider refused to send to an
address that bounced before or cannot exist.

Plain Python: no ORM, no request. Addresses in the provider's text are masked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from config.log_filters import redact
from marketing import batching

# anymail.signals.EventType / RejectReason values.
QUEUED, SENT, REJECTED, FAILED = "queued", "sent", "rejected", "failed"
BOUNCED, DEFERRED, DELIVERED, AUTORESPONDED = "bounced", "deferred", "delivered", "autoresponded"
OPENED, CLICKED, COMPLAINED, UNSUBSCRIBED = "opened", "clicked", "complained", "unsubscribed"
SUBSCRIBED, UNKNOWN = "subscribed", "unknown"
EVENT_TYPES = (
    QUEUED,
    SENT,
    REJECTED,
    FAILED,
    BOUNCED,
    DEFERRED,
    DELIVERED,
    AUTORESPONDED,
    OPENED,
    CLICKED,
    COMPLAINED,
    UNSUBSCRIBED,
    SUBSCRIBED,
    UNKNOWN,
)
BAD_MAILBOX = frozenset({"bounced", "invalid"})
HARD, SOFT = "hard", "soft"


@dataclass(frozen=True)
class ProviderEvent:
    esp_name: str
    event_type: str
    reject_reason: str
    bounce: str  # HARD, SOFT or ""
    event_id: str
    message_id: str
    # Held only in memory: the stored event keeps its keyed hash and its domain.
    recipient: str
    occurred_at: datetime | None
    description: str
    mta_response: str
    delivery_id: int | None
    campaign_id: int | None
    dedupe_key: str

    @property
    def recipient_domain(self) -> str:
        return self.recipient.rpartition("@")[2].lower()[:255] if "@" in self.recipient else ""


def normalise(event: Any, *, esp_name: str) -> ProviderEvent:
    """One anymail tracking event as we keep it. Never raises on odd values."""
    esp_name = _text(esp_name, 50) or "unknown"
    event_type = _text(getattr(event, "event_type", ""), 20) or UNKNOWN
    reject_reason = _text(getattr(event, "reject_reason", ""), 20)
    raw = getattr(event, "esp_event", None)
    metadata = getattr(event, "metadata", None)
    metadata = metadata if isinstance(metadata, dict) else {}
    occurred_at = getattr(event, "timestamp", None)
    if not isinstance(occurred_at, datetime):
        occurred_at = None
    elif occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    recipient = _text(getattr(event, "recipient", ""), 254)
    message_id = _text(getattr(event, "message_id", ""), 255)
    event_id, provider_id = _provider_event_id(esp_name, raw, _text(getattr(event, "event_id", ""), 255))
    description = _text(getattr(event, "description", ""), 2000)
    mta_response = _text(getattr(event, "mta_response", ""), 2000)
    content = [esp_name, event_type, message_id, recipient.lower(), occurred_at, reject_reason]
    content += [description, mta_response, _text(getattr(event, "click_url", ""), 2000)]
    return ProviderEvent(
        esp_name=esp_name,
        event_type=event_type,
        reject_reason=reject_reason,
        bounce=bounce_kind(event_type, reject_reason, esp_name=esp_name, raw=raw),
        event_id=event_id,
        message_id=message_id,
        recipient=recipient,
        occurred_at=occurred_at,
        description=redact(description)[:300],
        mta_response=redact(mta_response)[:500],
        delivery_id=_id(metadata.get(batching.DELIVERY_ID)),
        campaign_id=_id(metadata.get(batching.CAMPAIGN_ID)),
        dedupe_key=dedupe_key(esp_name=esp_name, provider_id=provider_id)
        if provider_id
        else _sha256(["content", *content]),
    )


def bounce_kind(event_type: str, reject_reason: str, *, esp_name: str = "", raw: Any = None) -> str:
    """HARD, SOFT or "" for an event (see the module docstring)."""
    if event_type == DEFERRED:
        return SOFT
    if event_type == BOUNCED:
        if _provider_says_soft(esp_name, raw):
            return SOFT
        return HARD if reject_reason in ("", *BAD_MAILBOX) else SOFT
    if event_type == REJECTED and reject_reason in BAD_MAILBOX:
        return HARD
    return ""


def dedupe_key(*, esp_name: str, provider_id: str) -> str:
    return _sha256(["id", esp_name, provider_id])


def _provider_says_soft(esp_name: str, raw: Any) -> bool:
    if not isinstance(raw, dict):
        return False
    name = esp_name.lower()
    if name == "postmark":
        return raw.get("Type") == "SoftBounce"
    if name == "sendgrid":
        return str(raw.get("type", "")).lower() == "blocked"
    if name == "mandrill":
        return raw.get("event") == "soft_bounce"
    return False


def _provider_event_id(esp_name: str, raw: Any, event_id: str) -> tuple[str, str]:
    """(the id staff find in the provider's logs, the id that names the event once)."""
    # anymail's Mailgun event_id is the signature token, new on every POST, so a retried
    # webhook would look new; event-data.id ("unique within a day") with the timestamp
    # names the event itself.
    if esp_name.lower() == "mailgun" and isinstance(raw, dict):
        data = raw.get("event-data")
        if isinstance(data, dict) and data.get("id"):
            shown = _text(data["id"], 200)
            return shown, f"{shown}@{_text(data.get('timestamp'), 40)}"
    return event_id, event_id


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    # PostgreSQL text cannot hold NUL; a payload may carry one (a 500 the provider retries).
    return str(value).replace("\x00", "").strip()[:limit]


def _id(value: Any) -> int | None:
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() and len(text) < 19 else None


def _sha256(content: list[Any]) -> str:
    data = json.dumps(content, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode()).hexdigest()

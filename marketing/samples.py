"""Sample recipients for previews and test sends, and a campaign's progress figures.

Shared by the admin and ``manage.py campaign``. A sample's per-recipient links point at
``example.invalid``: a preview or test email can never act on a real subscriber.
"""

from __future__ import annotations

from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from marketing import rendering, services
from marketing.models import Campaign

SAMPLE_NAME = "Alex"
SAMPLE_EMAIL = "alex@example.com"
# RFC 2606: .invalid never resolves, so a sample link can never unsubscribe anybody.
SAMPLE_LINKS = {
    rendering.UNSUBSCRIBE_URL: "https://example.invalid/sample-unsubscribe-link",
    rendering.PREFERENCES_URL: "https://example.invalid/sample-preferences-link",
}
TEST_SUBJECT_PREFIX = "[Test] "


def sample_recipient(*, name: str = "", email: str = "") -> rendering.Recipient:
    return rendering.Recipient(
        subscriber_id=0, email=email or SAMPLE_EMAIL, name=name or SAMPLE_NAME, consented_at=timezone.now()
    )


def staff_recipient(user: Any) -> rendering.Recipient:
    """The requesting staff user as a sample recipient."""
    name = (getattr(user, "get_full_name", lambda: "")() or "").strip()
    return sample_recipient(name=name, email=getattr(user, "email", "") or "")


def sample_message(
    prepared: rendering.PreparedCampaign, recipient: rendering.Recipient, *, connection: Any = None
) -> EmailMultiAlternatives:
    """``build_message`` for a sample recipient, with its per-recipient links made sample links."""
    message = rendering.build_message(prepared, recipient, connection=connection)
    _html, text_values = rendering.recipient_values(prepared, recipient)
    swaps = [(text_values[key], sample) for key, sample in SAMPLE_LINKS.items()]

    def swap(value: str) -> str:
        for real, sample in swaps:
            value = value.replace(real, sample)
        return value

    message.body = swap(str(message.body))
    html = html_part(message)
    message.alternatives = []
    message.attach_alternative(swap(html), "text/html")
    message.extra_headers = {key: swap(value) for key, value in message.extra_headers.items()}
    return message


def html_part(message: EmailMultiAlternatives) -> str:
    for content, mimetype in message.alternatives:
        if mimetype == "text/html":
            return str(content)
    return ""


def send_test(*, campaign: Campaign, to: str, name: str = "", actor: services.Actor) -> None:
    """Send the campaign to one address as a test, then record it.

    The send happens outside any transaction (a rollback cannot unsend an email); only a
    test that left is recorded.
    """
    message = sample_message(rendering.prepare(campaign), sample_recipient(name=name, email=to))
    message.subject = TEST_SUBJECT_PREFIX + message.subject
    message.send()
    services.campaign_record_test(campaign_id=campaign.pk, actor=actor, to=to)


def campaign_progress(campaign: Campaign) -> dict[str, Any]:
    """The campaign's counters, as the page and ``progress.json`` show them."""
    done = campaign.sent_count + campaign.failed_count + campaign.skipped_count
    total = campaign.recipients_count
    return {
        "status": campaign.status,
        "status_display": campaign.get_status_display(),
        "recipients": total,
        "queued": campaign.queued_count,
        "sent": campaign.sent_count,
        "failed": campaign.failed_count,
        "skipped": campaign.skipped_count,
        "done": done,
        "percent": min(100, done * 100 // total) if total else 0,
        "paused_reason": campaign.paused_reason,
        "started_at": campaign.started_at.isoformat() if campaign.started_at else None,
        "finished_at": campaign.finished_at.isoformat() if campaign.finished_at else None,
    }

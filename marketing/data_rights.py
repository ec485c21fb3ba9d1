"""Marketing's part of a subscriber's data rights, registered with ``subscribers.exports``
by ``MarketingConfig.ready()`` (the subscribers app cannot import this one).

``deliveries`` is the export section: every campaign message we sent or tried to send the
subscriber. ``deliveries_erase`` is the erasure hook: it runs inside
``subscribers.services.subscriber_erase``'s transaction.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q

from marketing.models import Delivery, DeliveryEvent
from subscribers.models import Subscriber


def deliveries(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Each message, whether its opens and clicks were noted, and what we learnt of it since
    (delivered, opened, clicked, bounced, complained, as the provider or our links told us)."""
    events = Prefetch("events", queryset=DeliveryEvent.objects.order_by("occurred_at", "pk"))
    rows = (
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("campaign__purpose")
        .prefetch_related(events)
        .order_by("pk")
    )
    return [
        {
            "campaign": d.campaign.name,
            "subject": d.campaign.subject,
            "purpose": d.campaign.purpose.slug,
            "status": d.status,
            "sent_at": d.sent_at.isoformat() if d.sent_at else None,
            "provider_message_id": d.provider_message_id,
            "opens_and_clicks_noted": d.tracked,
            "events": [
                {"event": e.event_type, "at": e.occurred_at.isoformat(), "detail": e.description}
                for e in d.events.all()
            ],
        }
        for d in rows
    ]


def deliveries_erase(subscriber: Subscriber) -> None:
    """Blank what a delivery may hold of the person's address.

    SMTP refusals and provider bounce texts often quote the address ("550 <ada@…> no such
    user"), a provider event keeps the address's keyed hash, which after an erasure only the
    suppression list may hold, and its domain, which for a personal domain names the person.
    Statuses, times and message ids stay for the campaign's reports.
    """
    Delivery.objects.filter(subscriber=subscriber).exclude(error="").update(error="")
    mine = Q(delivery__subscriber=subscriber)
    if subscriber.email_hash:
        mine |= Q(delivery__isnull=True, recipient_hash=subscriber.email_hash)  # never matched to a delivery
    DeliveryEvent.objects.filter(mine).update(
        recipient_hash="", recipient_domain="", description="", mta_response=""
    )

"""Services for provider events: store each one once, then match it and act on it.

``delivery_record_event`` runs inside the webhook request: one INSERT (or nothing, for a
duplicate) and the processing task queued on commit. ``delivery_event_process`` runs in
that task, in one transaction per event:

- match: the ``delivery_id`` we put in the message's metadata first (checked against
  the campaign id and provider message id it came with), else the provider message id
  together with the recipient (a Mailgun batch gives all its recipients one message id);
- act, for a matched event whose subscriber still holds the address:

  ================================  =========================================================
  hard bounce (also ``rejected``    suppress (HARD_BOUNCE); counts as a bounce
  for a bad mailbox)
  soft bounce, deferral             after ``SOFT_BOUNCE_LIMIT`` deliveries in a row without a
                                    ``delivered``: suppress (SOFT_BOUNCES); a soft ``bounced``
                                    counts as a bounce
  complaint                         suppress (COMPLAINT), withdraw the campaign's purpose;
                                    counts as a complaint
  unsubscribed at the provider      suppress (PROVIDER_UNSUBSCRIBE), withdraw the purpose
  rejected: on the provider's       suppress with the matching reason (the provider will not
  complaint/unsubscribe list        send there anyway); no withdrawal, no count
  ================================  =========================================================

  every ledger event with the provider as source and actor; each delivery counts once
  (also in the report's hourly counters, ``marketing.reports.counters``);
- check the campaign's guardrails (``marketing.guardrails``).

A provider event never gives consent: "resubscribed" is stored and nothing else.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from marketing import events, guardrails, services
from marketing.events import ProviderEvent
from marketing.models import Campaign, Delivery, DeliveryEvent
from marketing.reports import counters
from subscribers import services as subscriber_services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, Subscriber, Suppression

Reason = Suppression.Reason
# A refusal because of the provider's own lists (a bad mailbox is a hard bounce).
REJECTED_REASONS = {"spam": Reason.COMPLAINT, "unsubscribed": Reason.PROVIDER_UNSUBSCRIBE}
# What counts as a bounce of a delivery, once.
BOUNCES = Q(event_type=events.BOUNCED) | Q(event_type=events.REJECTED, bounce=events.HARD)


@transaction.atomic
def delivery_record_event(*, event: ProviderEvent) -> tuple[DeliveryEvent, bool]:
    """Store ``event`` unless it is already stored; (row, created). Queues its processing."""
    row, created = DeliveryEvent.objects.get_or_create(
        dedupe_key=event.dedupe_key,
        defaults={
            "esp_name": event.esp_name,
            "event_type": event.event_type,
            "reject_reason": event.reject_reason,
            "bounce": event.bounce,
            "event_id": event.event_id,
            "provider_message_id": event.message_id,
            "recipient_hash": subscriber_services.address_hash(event.recipient) if event.recipient else "",
            "recipient_domain": event.recipient_domain,
            "metadata": _metadata(event),
            "description": event.description,
            "mta_response": event.mta_response,
            "occurred_at": event.occurred_at or timezone.now(),
        },
    )
    if created:
        _process_on_commit(row.pk)
    return row, created


def _metadata(event: ProviderEvent) -> dict[str, int]:
    ids = {"delivery_id": event.delivery_id, "campaign_id": event.campaign_id}
    return {key: value for key, value in ids.items() if value is not None}


def _process_on_commit(event_id: int) -> None:
    # Imported late: tasks import this module.
    from marketing import tasks

    # robust: with the broker down the event is still stored; the sweep
    # (marketing.process_pending_delivery_events) queues it once the broker is back.
    transaction.on_commit(lambda: tasks.process_delivery_event.delay(event_id), robust=True)


def delivery_events_pending(*, older_than_seconds: float = 60.0, limit: int = 1000) -> list[int]:
    """Ids of events stored a while ago whose processing has not run (its task was lost)."""
    before = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = DeliveryEvent.objects.filter(processed_at__isnull=True, received_at__lt=before)
    return list(pending.order_by("received_at").values_list("pk", flat=True)[:limit])


@transaction.atomic
def delivery_event_process(*, event_id: int) -> str:
    """Match and act on one stored event, once. Returns what was done, as staff read it."""
    row = DeliveryEvent.objects.select_for_update().filter(pk=event_id).first()
    if row is None or row.processed_at is not None:
        return ""
    delivery = _match(row)
    if delivery is None:
        outcome = "no matching delivery: kept for inspection"
    else:
        row.delivery, row.campaign_id, row.matched = delivery, delivery.campaign_id, True
        # Saved first: the soft-bounce count below reads this row as matched.
        row.save(update_fields=["delivery", "campaign", "matched"])
        outcome = _act(row, delivery)
    row.processed_at, row.outcome = timezone.now(), outcome[:200]
    row.save(update_fields=["processed_at", "outcome"])
    return outcome


def _match(row: DeliveryEvent) -> Delivery | None:
    claimed = row.metadata.get("delivery_id") if isinstance(row.metadata, dict) else None
    if isinstance(claimed, int):
        delivery = Delivery.objects.filter(pk=claimed).first()
        if delivery is not None and _consistent(delivery, row):
            return delivery
    message_id = row.provider_message_id.strip()
    if not message_id:
        return None
    bare = message_id.strip("<>")
    candidates = Delivery.objects.filter(provider_message_id__in={message_id, bare, f"<{bare}>"})
    if row.recipient_hash:
        candidates = candidates.filter(subscriber__email_hash=row.recipient_hash)
    found = list(candidates[:2])
    return found[0] if len(found) == 1 else None


def _consistent(delivery: Delivery, row: DeliveryEvent) -> bool:
    """The metadata's delivery id is ours (not another installation's on the same account)."""
    campaign_id = row.metadata.get("campaign_id")
    if isinstance(campaign_id, int) and campaign_id != delivery.campaign_id:
        return False
    ours, theirs = delivery.provider_message_id.strip("<>"), row.provider_message_id.strip("<>")
    return not (ours and theirs and ours != theirs)


def _act(row: DeliveryEvent, delivery: Delivery) -> str:
    delivery = Delivery.objects.select_for_update().select_related("campaign__purpose").get(pk=delivery.pk)
    subscriber = Subscriber.objects.select_for_update().get(pk=delivery.subscriber_id)
    campaign = delivery.campaign
    kind, reason = row.event_type, row.reject_reason
    evidence = Evidence(
        source=ConsentEvent.Source.PROVIDER,
        actor=ConsentEvent.Actor.PROVIDER,
        actor_label=row.esp_name,
        submitted={"event": kind, "reason": reason, "provider_event_id": row.event_id},
    )
    done: list[str] = []
    counted = {"bounced": 0, "complained": 0}
    if kind == events.COMPLAINED:
        done.append(_suppress(row, subscriber, Reason.COMPLAINT, evidence))
        done.append(_withdraw(subscriber, campaign, evidence))
        counted["complained"] = _first_for_delivery(row, delivery, Q(event_type=events.COMPLAINED))
    elif kind == events.UNSUBSCRIBED:
        done.append(_suppress(row, subscriber, Reason.PROVIDER_UNSUBSCRIBE, evidence))
        done.append(_withdraw(subscriber, campaign, evidence))
    elif row.bounce == events.HARD:
        done.append(_suppress(row, subscriber, Reason.HARD_BOUNCE, evidence))
        counted["bounced"] = _first_for_delivery(row, delivery, BOUNCES)
    elif row.bounce == events.SOFT:
        done.append(_soft_bounce(row, subscriber, evidence))
        if kind == events.BOUNCED:
            counted["bounced"] = _first_for_delivery(row, delivery, BOUNCES)
    elif kind == events.REJECTED and reason in REJECTED_REASONS:
        done.append(_suppress(row, subscriber, REJECTED_REASONS[reason], evidence))
    counters.delivery_event_count(row=row, delivery=delivery, **counted)
    if any(counted.values()):
        services.campaign_count(campaign_id=campaign.pk, **counted)
        guardrails.campaign_guard(campaign_id=campaign.pk)
    return "; ".join(d for d in done if d) or "recorded"


def _suppress(row: DeliveryEvent, subscriber: Subscriber, reason: Reason, evidence: Evidence) -> str:
    if subscriber.email is None:
        return "subscriber erased: nothing to suppress"
    if row.recipient_hash and row.recipient_hash != subscriber.email_hash:
        return "the subscriber's address changed since sending: not suppressed"
    detail = f"{row.esp_name} {row.event_type}"
    detail += f" ({row.reject_reason})" if row.reject_reason else ""
    detail += f": {row.mta_response or row.description}" if (row.mta_response or row.description) else ""
    created = subscriber_services.address_suppress(
        subscriber=subscriber, reason=reason, evidence=evidence, detail=detail
    )
    label = reason.label.lower()
    return f"suppressed ({label})" if created else f"already suppressed ({label} reported)"


def _withdraw(subscriber: Subscriber, campaign: Campaign, evidence: Evidence) -> str:
    withdrawn = subscriber_services.consent_withdraw(
        subscriber=subscriber, purpose=campaign.purpose, channel=Channel.EMAIL, evidence=evidence
    )
    return f"withdrew {campaign.purpose.name}" if withdrawn else ""


def _soft_bounce(row: DeliveryEvent, subscriber: Subscriber, evidence: Evidence) -> str:
    in_a_row = soft_bounces_in_a_row(subscriber_id=subscriber.pk)
    limit = settings.SOFT_BOUNCE_LIMIT
    if in_a_row < limit:
        return f"soft bounce {in_a_row} of {limit} in a row"
    return _suppress(row, subscriber, Reason.SOFT_BOUNCES, evidence)


def soft_bounces_in_a_row(*, subscriber_id: int) -> int:
    """Deliveries to this subscriber that soft-bounced since the last one delivered."""
    matched = DeliveryEvent.objects.filter(delivery__subscriber_id=subscriber_id, matched=True)
    last_delivered: datetime | None = matched.filter(event_type=events.DELIVERED).aggregate(
        at=Max("occurred_at")
    )["at"]
    soft = matched.filter(bounce=events.SOFT)
    if last_delivered is not None:
        soft = soft.filter(occurred_at__gt=last_delivered)
    return soft.order_by().values("delivery_id").distinct().count()


def _first_for_delivery(row: DeliveryEvent, delivery: Delivery, kind: Q) -> int:
    """1 if no event of this kind was counted for the delivery before (the delivery is locked)."""
    earlier = DeliveryEvent.objects.filter(kind, delivery=delivery, processed_at__isnull=False)
    return 0 if earlier.exclude(pk=row.pk).exists() else 1

"""Withdrawing consent, and how and when a consent is used: frequency, pauses, sends.

Each service runs in one transaction and writes its ledger event in it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from subscribers import ledger, selectors
from subscribers.id_arrays import in_ids
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, Frequency, Purpose, Subscriber


@transaction.atomic
def consent_withdraw(
    *, subscriber: Subscriber, purpose: Purpose, channel: Channel | str, evidence: Evidence
) -> ConsentEvent | None:
    """Withdraw one consent (active or still pending). Returns None if there was nothing to withdraw."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    state = (
        ConsentState.objects.select_for_update()
        .filter(subscriber=subscriber, purpose=purpose, channel=channel)
        .select_related("consent_text")
        .first()
    )
    if state is None or state.status not in (ConsentState.Status.ACTIVE, ConsentState.Status.PENDING):
        return None
    now = timezone.now()
    event = ledger.append(
        subscriber,
        purpose=purpose,
        channel=channel,
        kind=ConsentEvent.Kind.WITHDRAWN,
        consent_text=state.consent_text,
        evidence=evidence,
        occurred_at=now,
    )
    state.status = ConsentState.Status.WITHDRAWN
    state.withdrawn_at = now
    state.last_event = event
    state.save(update_fields=["status", "withdrawn_at", "last_event"])
    return event


@transaction.atomic
def consents_withdraw_all(*, subscriber: Subscriber, evidence: Evidence) -> list[ConsentEvent]:
    """ "Leave everything": withdraw every active consent, and every pending one so that it
    cannot become active after the person has left."""
    # Locked first, as every consent change does: a switch-on racing this one either lands
    # before it (and is withdrawn here) or after it (and is what the person chose last).
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    open_states = selectors.open_consents(subscriber=subscriber)
    events = [
        consent_withdraw(subscriber=subscriber, purpose=s.purpose, channel=s.channel, evidence=evidence)
        for s in open_states
    ]
    return [e for e in events if e is not None]


@transaction.atomic
def consent_frequency_set(
    *, subscriber: Subscriber, purpose: Purpose, frequency: Frequency | str, evidence: Evidence
) -> ConsentEvent | None:
    """How often this subscriber hears from us for ``purpose`` by email. None if unchanged
    or there is no consent to tune."""
    frequency = Frequency(frequency)
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    state = (
        ConsentState.objects.select_for_update()
        .filter(subscriber=subscriber, purpose=purpose, channel=Channel.EMAIL)
        .select_related("consent_text")
        .first()
    )
    if state is None or state.frequency == frequency:
        return None
    event = ledger.append(
        subscriber,
        purpose=purpose,
        channel=Channel.EMAIL,
        kind=ConsentEvent.Kind.FREQUENCY_CHANGED,
        consent_text=state.consent_text,
        evidence=_with_submitted(evidence, frequency=str(frequency), previous=state.frequency),
    )
    state.frequency = frequency
    state.save(update_fields=["frequency"])
    return event


# The pauses the preference centre offers, in months.
PAUSE_MONTHS = (1, 3, 6)


@transaction.atomic
def subscriber_pause(*, subscriber: Subscriber, months: int, evidence: Evidence) -> ConsentEvent:
    """Send nothing at all to this subscriber for ``months`` (1, 3 or 6); consents stay as they are."""
    if months not in PAUSE_MONTHS:
        raise ValueError(f"a pause lasts one of {PAUSE_MONTHS} months")
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    now = timezone.now()
    until = now + timedelta(days=30 * months)
    event = ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.PAUSED,
        consent_text=None,
        evidence=_with_submitted(evidence, months=months, until=until.isoformat()),
        occurred_at=now,
    )
    subscriber.paused_until = until
    subscriber.save(update_fields=["paused_until"])
    return event


@transaction.atomic
def subscriber_resume(*, subscriber: Subscriber, evidence: Evidence) -> ConsentEvent | None:
    """End a pause early. None if the subscriber was not paused."""
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.paused_until is None or subscriber.paused_until <= timezone.now():
        return None
    event = ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.RESUMED,
        consent_text=None,
        evidence=evidence,
    )
    subscriber.paused_until = None
    subscriber.save(update_fields=["paused_until"])
    return event


def _with_submitted(evidence: Evidence, **values: Any) -> Evidence:
    """``evidence`` with ``values`` added to what the person submitted."""
    return dataclasses.replace(evidence, submitted={**evidence.submitted, **values})


def consents_mark_sent(
    *, purpose_id: int, subscriber_ids: Sequence[int], at: datetime, channel: Channel | str = Channel.EMAIL
) -> int:
    """Note that these subscribers were just sent mail for this purpose, which is what their
    frequency choice ("at most weekly") is measured against. Not a consent change: no event.
    Runs in the caller's transaction (dispatch records the sends in the same one)."""
    if not subscriber_ids:
        return 0
    return ConsentState.objects.filter(
        purpose_id=purpose_id, channel=channel, subscriber_id__in=in_ids(subscriber_ids)
    ).update(last_sent_at=at)

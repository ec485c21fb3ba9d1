"""Suppressing an address for every future send, and lifting a suppression.

A suppression is keyed by the address's keyed hash (``Subscriber.email_hash``), so it
outlives an erasure of the address itself. Each service runs in one transaction and
writes its purpose-less ledger event (``suppressed``, ``suppression_lifted``) in it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from subscribers import ledger
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Subscriber, Suppression

# What a lift may not undo: the person asked for their data to be erased.
NOT_LIFTABLE = frozenset({Suppression.Reason.ERASURE})


class SuppressionError(Exception):
    """The suppression cannot be changed this way; the message says why, for staff."""


@transaction.atomic
def address_suppress(
    *, subscriber: Subscriber, reason: Suppression.Reason | str, evidence: Evidence, detail: str = ""
) -> Suppression | None:
    """Suppress ``subscriber``'s address for all future sends, with a ``suppressed`` event.

    Returns None when the address already has a suppression in force (nothing changes).
    """
    reason = Suppression.Reason(reason)
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if not subscriber.email_hash:
        raise ValueError(f"subscriber {subscriber.pk} has no address hash to suppress")
    if Suppression.objects.filter(email_hash=subscriber.email_hash, lifted_at__isnull=True).exists():
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            suppression = Suppression.objects.create(
                email_hash=subscriber.email_hash, reason=reason, detail=detail, created_at=now
            )
    except IntegrityError:
        return None  # suppressed at the same moment by another path (e.g. an erasure)
    ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.SUPPRESSED,
        consent_text=None,
        evidence=_with_submitted(evidence, suppression=str(reason)),
        occurred_at=now,
    )
    return suppression


@transaction.atomic
def suppression_lift(*, suppression_id: int, staff_user: Any, note: str) -> Suppression:
    """Let mail reach the address again; recorded with who, when and why.

    The caller checks the ``subscribers.lift_suppression`` permission. The subscriber who
    holds the address (if any) gets a ``suppression_lifted`` ledger event. Consent is not
    restored: a withdrawn consent stays withdrawn until the person gives it again.
    """
    note = note.strip()
    if not note:
        raise SuppressionError("Say why the suppression is lifted: the note is kept with it.")
    suppression = Suppression.objects.select_for_update().get(pk=suppression_id)
    if suppression.lifted_at is not None:
        raise SuppressionError("This suppression was already lifted.")
    if suppression.reason in NOT_LIFTABLE:
        raise SuppressionError("An address suppressed because its owner asked to be erased stays suppressed.")
    holder = (
        Subscriber.objects.select_for_update()
        .filter(email_hash=suppression.email_hash, email__isnull=False)
        .order_by("pk")
        .first()
    )
    now = timezone.now()
    label = staff_user.get_username()
    suppression.lifted_at, suppression.lifted_by, suppression.lifted_by_label = now, staff_user, label
    suppression.lift_note = note
    suppression.save(update_fields=["lifted_at", "lifted_by", "lifted_by_label", "lift_note"])
    if holder is not None:
        ledger.append(
            holder,
            purpose=None,
            channel="",
            kind=ConsentEvent.Kind.SUPPRESSION_LIFTED,
            consent_text=None,
            evidence=Evidence(
                source=ConsentEvent.Source.ADMIN,
                actor=ConsentEvent.Actor.STAFF,
                actor_user_id=staff_user.pk,
                actor_label=label,
                submitted={"suppression": suppression.reason, "note": note},
            ),
            occurred_at=now,
        )
    return suppression


def _with_submitted(evidence: Evidence, **values: Any) -> Evidence:
    return dataclasses.replace(evidence, submitted={**evidence.submitted, **values})

"""What staff do for a person who asks by email, letter or phone rather than by a link.

CAN-SPAM (16 CFR 316.5) has us honour an opt-out from any route we advertise within 10
business days, and GDPR Art. 7(3) lets a person withdraw consent at any time; the pages
tell people they may write to us. The service runs in one transaction and writes the
ledger events (in the staff user's name, with how the request arrived) and the admin's
log entry in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Subscriber, Suppression
from subscribers.services.consent import consents_withdraw_all
from subscribers.services.suppression import address_suppress


class OnRequestError(Exception):
    """The request cannot be carried out; the message says why, for staff."""


@dataclass(frozen=True)
class UnsubscribeOutcome:
    withdrawn: list[ConsentEvent]
    # None when not asked for, or when a suppression was in force already.
    suppression: Suppression | None


@transaction.atomic
def subscriber_unsubscribe_on_request(
    *, subscriber: Subscriber, staff_user: Any, request_note: str, suppress: bool
) -> UnsubscribeOutcome:
    """Withdraw every open consent (active or pending, every purpose and channel) of
    ``subscriber`` because they asked ``staff_user``; with ``suppress``, also suppress
    their address (``manual``) so nothing is mailed to it whatever is consented later.

    ``request_note`` says how the request arrived and its reference; it is kept in the
    ledger evidence, which an erasure blanks.
    """
    note = request_note.strip()
    if not note:
        raise OnRequestError("Say how the request arrived and its reference: the ledger keeps it.")
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.erased_at is not None or subscriber.email is None:
        raise OnRequestError(f"Subscriber #{subscriber.pk} is erased: there is nothing left to withdraw.")
    label = staff_user.get_username()
    evidence = Evidence(
        source=ConsentEvent.Source.ADMIN,
        actor=ConsentEvent.Actor.STAFF,
        actor_user_id=staff_user.pk,
        actor_label=label,
        submitted={"request": note},
    )
    withdrawn = consents_withdraw_all(subscriber=subscriber, evidence=evidence)
    suppression = None
    if suppress:
        # The detail is shown to Marketers and outlives an erasure: who, never the note.
        suppression = address_suppress(
            subscriber=subscriber,
            reason=Suppression.Reason.MANUAL,
            evidence=evidence,
            detail=f"At the person's request, by {label}",
        )
    done = f"{len(withdrawn)} consent(s) withdrawn"
    if suppress:
        done += "; address suppressed" if suppression else "; address already suppressed"
    # The note stays in the ledger only: this log is not blanked by an erasure.
    LogEntry.objects.create(
        user_id=staff_user.pk,
        content_type=ContentType.objects.get_for_model(Subscriber),
        object_id=str(subscriber.pk),
        object_repr=str(subscriber)[:200],
        action_flag=CHANGE,
        change_message=f"Unsubscribed from everything at the person's request ({done}).",
    )
    return UnsubscribeOutcome(withdrawn=withdrawn, suppression=suppression)

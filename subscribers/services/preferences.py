"""What a subscriber changes from the preference centre and the unsubscribe page.

Opting back in, the profile, and moving to another address. Each service runs in one
transaction and writes its ledger event in it; emails are queued with
``transaction.on_commit``. Switching off, frequency and pauses live in ``consent.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from subscribers import ledger, selectors
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConsentEvent,
    ConsentState,
    EmailChangeRequest,
    Purpose,
    Subscriber,
)
from subscribers.services.signup import address_hash, lift_erasure_suppression

# What mail by post needs on file, as the signup form asks for it.
POSTAL_FIELDS = ("address_line1", "postal_code", "city", "country")
PROFILE_FIELDS = ("name", "address_line1", "address_line2", "postal_code", "city", "country")
# An undo button is offered right after unsubscribing; later, the preference centre is the way back.
UNDO_WINDOW = timedelta(hours=1)
MAX_UNDO_EVENTS = 20


class PreferenceError(Exception):
    """A change that cannot be made; ``reason`` says why, for the page to explain.

    Reasons: ``not_offered``, ``text_changed``, ``postal_address_needed``,
    ``invalid_address``, ``same_address``, ``unknown``, ``expired``, ``already_confirmed``,
    ``cancelled``, ``address_taken``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def has_postal_address(subscriber: Subscriber) -> bool:
    return all(getattr(subscriber, name).strip() for name in POSTAL_FIELDS)


def address_normalise(value: str) -> str:
    """The address as signup stores it (``forms.normalise_email``): domain lower-cased, local part kept."""
    try:
        # No SMTPUTF8 local parts, as at signup (``forms.normalise_email``).
        return validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False).normalized
    except EmailNotValidError as exc:
        raise PreferenceError("invalid_address") from exc


def _locked(subscriber: Subscriber) -> Subscriber:
    return Subscriber.objects.select_for_update().get(pk=subscriber.pk)


def _replace_submitted(evidence: Evidence, submitted: dict[str, Any]) -> Evidence:
    return dataclasses.replace(evidence, submitted=submitted)


@transaction.atomic
def consent_opt_in(
    *,
    subscriber: Subscriber,
    purpose: Purpose,
    channel: Channel | str,
    consent_text_id: int | None,
    evidence: Evidence,
) -> ConsentEvent | None:
    """Turn a consent on from a link we emailed to this subscriber; active at once.

    ``consent_text_id`` is the text version the person was shown and is agreeing to. It
    must still be the purpose's current text in the subscriber's language; if Compliance
    has published another since (or the caller does not know which text was shown),
    ``PreferenceError("text_changed")`` and nothing is recorded: the ledger must never say
    someone agreed to wording they did not see (GDPR Art. 7(1)).

    Records ``requested`` and ``confirmed`` with this request's evidence, both pointing at
    that text. Returns the ``confirmed`` event, or None if the consent was already active.
    See README, "Decisions", for why a click from a signed link needs no second email.
    """
    channel = Channel(channel)
    subscriber = _locked(subscriber)
    if subscriber.email is None or channel not in purpose.channels:
        raise PreferenceError("not_offered")
    if channel == Channel.POSTAL and not has_postal_address(subscriber):
        raise PreferenceError("postal_address_needed")
    state = (
        ConsentState.objects.select_for_update()
        .filter(subscriber=subscriber, purpose=purpose, channel=channel)
        .first()
    )
    if state is not None and state.status == ConsentState.Status.ACTIVE:
        return None
    offer = next(
        (o for o in selectors.signup_offers(language=subscriber.language) if o.purpose.pk == purpose.pk),
        None,
    )
    if offer is None:
        raise PreferenceError("not_offered")
    if offer.text.pk != consent_text_id:
        raise PreferenceError("text_changed")
    now = timezone.now()
    for kind in (ConsentEvent.Kind.REQUESTED, ConsentEvent.Kind.CONFIRMED):
        event = ledger.append(
            subscriber,
            purpose=purpose,
            channel=channel,
            kind=kind,
            consent_text=offer.text,
            evidence=evidence,
            occurred_at=now,
        )
    fresh = {
        "status": ConsentState.Status.ACTIVE,
        "consent_text": offer.text,
        "requested_at": now,
        "confirmed_at": now,
        "withdrawn_at": None,
        "last_event": event,
    }
    if state is None:
        ConsentState.objects.create(subscriber=subscriber, purpose=purpose, channel=channel, **fresh)
    else:
        # The frequency chosen earlier stays: turning a consent back on is not resetting it.
        for name, value in fresh.items():
            setattr(state, name, value)
        state.save(update_fields=list(fresh))
    return event


@dataclasses.dataclass(frozen=True)
class UndoOutcome:
    """What an undo did: consents active again, and those left off because the wording the
    person agreed to has been replaced since (they must read the new one to opt back in)."""

    restored: list[ConsentState]
    reworded: list[ConsentState]


@transaction.atomic
def unsubscribe_undo(
    *, subscriber: Subscriber, withdrawal_ids: Iterable[int], evidence: Evidence
) -> UndoOutcome:
    """Turn back on what one unsubscribe just turned off.

    Only withdrawals of this subscriber made from an unsubscribe link in the last hour
    count, and only while nothing has changed since (the withdrawal is still the latest
    event of its consent). A consent that was only pending when withdrawn stays off: it was
    never confirmed, so there is nothing to restore. The undo page shows no wording, so a
    consent comes back only under the text version the person had agreed to; if that
    version has been superseded it stays off and is listed in ``reworded``.
    """
    subscriber = _locked(subscriber)
    ids = sorted(set(withdrawal_ids))[:MAX_UNDO_EVENTS]
    withdrawals = ConsentEvent.objects.filter(
        pk__in=ids,
        subscriber=subscriber,
        kind=ConsentEvent.Kind.WITHDRAWN,
        source=ConsentEvent.Source.UNSUBSCRIBE_LINK,
        occurred_at__gt=timezone.now() - UNDO_WINDOW,
    ).select_related("purpose")
    restored = []
    reworded = []
    for withdrawal in withdrawals.order_by("seq"):
        state = (
            ConsentState.objects.select_for_update()
            .filter(subscriber=subscriber, purpose=withdrawal.purpose, channel=withdrawal.channel)
            .select_related("purpose")
            .first()
        )
        if state is None:
            continue
        # Pressed twice: the first press already restored it.
        already = state.status == ConsentState.Status.ACTIVE and state.last_event.seq > withdrawal.seq
        undoable = state.last_event_id == withdrawal.pk and state.confirmed_at is not None
        if undoable and withdrawal.purpose is not None:
            try:
                consent_opt_in(
                    subscriber=subscriber,
                    purpose=withdrawal.purpose,
                    channel=withdrawal.channel,
                    consent_text_id=state.consent_text_id,
                    evidence=evidence,
                )
            except PreferenceError as exc:
                if exc.reason == "text_changed":
                    reworded.append(state)
                continue  # otherwise no longer offered, or no address for post: stays off
            state.refresh_from_db()
        if already or undoable:
            restored.append(state)
    return UndoOutcome(restored=restored, reworded=reworded)


@transaction.atomic
def subscriber_profile_update(
    *,
    subscriber: Subscriber,
    name: str,
    address_line1: str,
    address_line2: str,
    postal_code: str,
    city: str,
    country: str,
    evidence: Evidence,
) -> ConsentEvent | None:
    """Change name and postal address. The ``profile_changed`` event's evidence holds only the
    new values of what changed; None if nothing did."""
    subscriber = _locked(subscriber)
    wanted = {
        "name": name,
        "address_line1": address_line1,
        "address_line2": address_line2,
        "postal_code": postal_code,
        "city": city,
        "country": country,
    }
    changed = {f: v.strip() for f, v in wanted.items() if v.strip() != getattr(subscriber, f)}
    if not changed:
        return None
    for field_name, value in changed.items():
        setattr(subscriber, field_name, value)
    postal_on = ConsentState.objects.filter(
        subscriber=subscriber, channel=Channel.POSTAL, status=ConsentState.Status.ACTIVE
    ).exists()
    if postal_on and not has_postal_address(subscriber):
        # We would have agreed to post to someone with nowhere to post to.
        raise PreferenceError("postal_address_needed")
    subscriber.save(update_fields=list(changed))
    return ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.PROFILE_CHANGED,
        consent_text=None,
        evidence=_replace_submitted(evidence, changed),
    )


@transaction.atomic
def email_change_request(*, subscriber: Subscriber, new_email: str, evidence: Evidence) -> EmailChangeRequest:
    """Ask to move to ``new_email``: the new address gets a link to confirm, the old one a notice.

    Nothing changes until the new address's owner confirms (``email_change_confirm``).
    Earlier open requests are cancelled. Whether the new address is already subscribed is
    not checked here: only its owner, on confirming, may learn that.
    """
    new_email = address_normalise(new_email)
    subscriber = _locked(subscriber)
    if subscriber.email is None:
        raise PreferenceError("unknown")
    if subscriber.email.lower() == new_email.lower():
        raise PreferenceError("same_address")
    now = timezone.now()
    EmailChangeRequest.objects.filter(
        subscriber=subscriber, confirmed_at__isnull=True, cancelled_at__isnull=True
    ).update(cancelled_at=now)
    change = EmailChangeRequest.objects.create(
        subscriber=subscriber,
        new_email=new_email,
        created_at=now,
        expires_at=now + timedelta(days=settings.CONFIRMATION_EXPIRY_DAYS),
    )
    ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.EMAIL_CHANGE_REQUESTED,
        consent_text=None,
        evidence=_replace_submitted(evidence, {"new_email": new_email}),
        occurred_at=now,
    )
    change_id = str(change.pk)
    # Two tasks, not one: a retry of either must never send the other email again. Robust:
    # with the broker down, tasks.send_unsent_emails queues them once it is back.
    transaction.on_commit(lambda: _tasks().send_email_change_confirmation.delay(change_id), robust=True)
    transaction.on_commit(lambda: _tasks().send_email_change_notice.delay(change_id), robust=True)
    return change


@transaction.atomic
def email_change_confirm(*, request_id: Any, evidence: Evidence) -> EmailChangeRequest:
    """The new address's owner confirms: it becomes the subscriber's address.

    Every preferences link sent to the old address stops working (``link_generation``);
    unsubscribe links keep working, as they only ever reduce mail. Refused with
    ``address_taken`` if another subscriber holds the address.
    """
    change = EmailChangeRequest.objects.select_for_update().filter(pk=request_id).first()
    if change is None:
        raise PreferenceError("unknown")
    if change.confirmed_at is not None:
        raise PreferenceError("already_confirmed")
    if change.cancelled_at is not None:
        raise PreferenceError("cancelled")
    if change.expires_at <= timezone.now():
        raise PreferenceError("expired")
    subscriber = Subscriber.objects.select_for_update().get(pk=change.subscriber_id)
    if subscriber.email is None:
        raise PreferenceError("unknown")  # erased since
    new_email = change.new_email
    if selectors.subscribers_with_address(new_email).exclude(pk=subscriber.pk).exists():
        raise PreferenceError("address_taken")
    old_email = subscriber.email
    subscriber.email = new_email
    subscriber.email_hash = address_hash(new_email)
    subscriber.link_generation += 1
    try:
        with transaction.atomic():
            subscriber.save(update_fields=["email", "email_hash", "link_generation"])
    except IntegrityError:
        # subscriber_email_ci_unique: someone signed up with it since the check above.
        raise PreferenceError("address_taken") from None
    now = timezone.now()
    ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.EMAIL_CHANGED,
        consent_text=None,
        evidence=_replace_submitted(evidence, {"old_email": old_email, "new_email": new_email}),
        occurred_at=now,
    )
    # Someone once erased this address; its owner now asks for mail at it.
    lift_erasure_suppression(subscriber, evidence, now)
    change.confirmed_at = now
    change.save(update_fields=["confirmed_at"])
    return change


def email_change_mark_sent(*, change_id: Any, confirmation: bool = False, notice: bool = False) -> None:
    """Record that an address-change email left; its task checks this before sending."""
    field = "confirmation_sent_at" if confirmation else "notice_sent_at"
    if confirmation == notice:
        raise ValueError("mark exactly one of confirmation or notice")
    EmailChangeRequest.objects.filter(pk=change_id, **{f"{field}__isnull": True}).update(
        **{field: timezone.now()}
    )


def _tasks() -> Any:
    # Imported late: the tasks module imports the services package.
    from subscribers import tasks

    return tasks

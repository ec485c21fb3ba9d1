"""Signup, double opt-in confirmation, expiry, and publishing consent texts.

Each service runs in one transaction and writes its ledger events in it; emails are
queued with ``transaction.on_commit`` so a rolled-back signup never mails anyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models.constants import OnConflict
from django.db.models.sql.subqueries import InsertQuery
from django.utils import timezone

from subscribers import ledger, selectors
from subscribers.addresses import hash_form
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConfirmationRequest,
    ConsentEvent,
    ConsentEvidence,
    ConsentState,
    ConsentText,
    EmailChangeRequest,
    Purpose,
    Subscriber,
    Suppression,
)
from subscribers.services import data_rights

logger = logging.getLogger(__name__)


class ConfirmationError(Exception):
    """The confirmation link cannot be used; ``reason`` says why in the visitor's terms."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConsentChoice:
    """One ticked box: this purpose, on this channel, as worded by this text version."""

    consent_text: ConsentText
    channel: Channel

    @property
    def purpose(self) -> Purpose:
        return self.consent_text.purpose


@dataclass(frozen=True)
class SignupOutcome:
    subscriber: Subscriber
    request: ConfirmationRequest | None
    already_active: list[ConsentChoice]
    held: bool = False  # past CONFIRMATIONS_PER_ADDRESS_PER_DAY: nothing recorded or sent


def address_hash(email: str) -> str:
    """Keyed hash of an address, stable across SECRET_KEY rotations (``ADDRESS_HASH_KEY``)."""
    key = settings.ADDRESS_HASH_KEY.encode()
    return hmac.new(key, hash_form(email).encode(), hashlib.sha256).hexdigest()


def _lock_or_create_subscriber(*, email: str, language: str) -> tuple[Subscriber, bool]:
    """The subscriber with this address, locked for this transaction (created if new).

    Returns it and whether it was created. The INSERT comes first: a new address, the common
    case, costs one statement, and a row this transaction inserted is already locked by it.
    """
    new = Subscriber(email=email, email_hash=address_hash(email), language=language)
    if _insert_unless_taken(new):
        return new, True
    for _attempt in range(3):
        found = selectors.subscribers_with_address(email).select_for_update().first()
        if found:
            return found, False
        if _insert_unless_taken(new):  # the holder was erased or changed address meanwhile
            return new, True
    raise RuntimeError("could not create or lock the subscriber")


def _insert_unless_taken(subscriber: Subscriber) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: False if another row holds the address (any case).

    Waits for a concurrent transaction inserting the same address, then answers for it,
    where a plain INSERT would abort this transaction with an IntegrityError.
    """
    meta = Subscriber._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    query = InsertQuery(Subscriber, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [subscriber])
    db = router.db_for_write(Subscriber)
    compiler = query.get_compiler(using=db)
    compiler.returning_fields = [meta.pk]
    [(sql, params)] = compiler.as_sql()
    with connections[db].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return False
    subscriber.pk = row[0]
    subscriber._state.adding = False
    subscriber._state.db = db
    return True


@transaction.atomic
def subscriber_sign_up(
    *,
    email: str,
    choices: Sequence[ConsentChoice],
    evidence: Evidence,
    name: str = "",
    postal_address: dict[str, str] | None = None,
    language: str = "en",
) -> SignupOutcome:
    """Record a signup: one ``requested`` event per choice, then a double opt-in email.

    Consents already active are left alone and the person is told so by email, never on
    the page, so the page cannot reveal who is subscribed.
    """
    if not choices:
        raise ValueError("a signup needs at least one choice")
    subscriber, created = _lock_or_create_subscriber(email=email, language=language)
    states = {}
    if not created:  # a new subscriber has no consents yet: nothing to read
        states = {
            (s.purpose_id, s.channel): s
            for s in ConsentState.objects.select_for_update().filter(subscriber=subscriber)
        }
    to_request = [
        c
        for c in choices
        if (s := states.get((c.purpose.pk, c.channel))) is None or s.status != ConsentState.Status.ACTIVE
    ]
    already = [c for c in choices if c not in to_request]
    request = None
    if (
        to_request
        and not created
        and _confirmations_today(subscriber) >= settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY
    ):
        # Anyone can type an address: past the cap, a signup for it records and mails nothing
        # (the page answers as always). Earlier requests' links still work.
        logger.info("signup for subscriber %s held: confirmation emails per day reached", subscriber.pk)
        return SignupOutcome(subscriber=subscriber, request=None, already_active=already, held=True)
    if to_request:
        now = timezone.now()
        request = ConfirmationRequest.objects.create(
            subscriber=subscriber,
            profile={"name": name, **(postal_address or {})},
            created_at=now,
            expires_at=now + timedelta(days=settings.CONFIRMATION_EXPIRY_DAYS),
        )
        events = ledger.append_many(
            subscriber,
            [
                ledger.Entry(
                    purpose=c.purpose,
                    channel=c.channel,
                    kind=ConsentEvent.Kind.REQUESTED,
                    consent_text=c.consent_text,
                )
                for c in to_request
            ],
            evidence=evidence,
            request=request,
            occurred_at=now,
        )
        # One INSERT ... ON CONFLICT DO UPDATE for every choice; a subscriber's own
        # frequency and last-sent time are kept.
        ConsentState.objects.bulk_create(
            [
                ConsentState(
                    subscriber=subscriber,
                    purpose=choice.purpose,
                    channel=choice.channel,
                    status=ConsentState.Status.PENDING,
                    consent_text=choice.consent_text,
                    requested_at=now,
                    confirmed_at=None,
                    withdrawn_at=None,
                    last_event=event,
                )
                for choice, event in zip(to_request, events, strict=True)
            ],
            update_conflicts=True,
            unique_fields=["subscriber", "purpose", "channel"],
            update_fields=[
                "status",
                "consent_text",
                "requested_at",
                "confirmed_at",
                "withdrawn_at",
                "last_event",
            ],
        )
        request_id = str(request.pk)
        # Robust: with the broker down the signup still stands and the visitor still gets
        # "check your inbox"; tasks.send_unsent_emails queues the email once it is back.
        transaction.on_commit(lambda: _tasks().send_confirmation_email.delay(request_id), robust=True)
    else:
        subscriber_id, address_key = subscriber.pk, subscriber.email_hash
        transaction.on_commit(
            lambda: _tasks().queue_already_subscribed(subscriber_id, address_key), robust=True
        )
    return SignupOutcome(subscriber=subscriber, request=request, already_active=already)


def _confirmations_today(subscriber: Subscriber) -> int:
    since = timezone.now() - timedelta(days=1)
    return ConfirmationRequest.objects.filter(subscriber=subscriber, created_at__gte=since).count()


@transaction.atomic
def subscription_confirm(*, request_id: Any, evidence: Evidence) -> ConfirmationRequest:
    """Confirm a double opt-in request: each still-pending consent becomes active.

    Returns the request, its ``subscriber`` the one confirmed (the profile typed at signup
    applied), so a caller needs no second read to say what follows for that person.
    """
    request = (
        ConfirmationRequest.objects.select_for_update()
        .select_related("subscriber")
        .filter(pk=request_id)
        .first()
    )
    if request is None:
        raise ConfirmationError("unknown")
    if request.confirmed_at is not None:
        raise ConfirmationError("already_confirmed")
    if request.expired_at is not None or request.expires_at <= timezone.now():
        raise ConfirmationError("expired")
    subscriber = Subscriber.objects.select_for_update().get(pk=request.subscriber_id)
    now = timezone.now()
    requested = (
        ConsentEvent.objects.filter(request=request, kind=ConsentEvent.Kind.REQUESTED)
        .select_related("purpose", "consent_text")
        .order_by("seq")
    )
    states = {
        (s.purpose_id, s.channel): s
        for s in ConsentState.objects.select_for_update().filter(subscriber=subscriber)
    }
    for req_event in requested:
        text = req_event.consent_text
        state = states.get((text.purpose_id, req_event.channel)) if text else None
        # Only what is still waiting: a withdrawal or a newer confirmation since wins.
        if text is None or state is None or state.status != ConsentState.Status.PENDING:
            continue
        event = ledger.append(
            subscriber,
            purpose=req_event.purpose,
            channel=req_event.channel,
            kind=ConsentEvent.Kind.CONFIRMED,
            consent_text=text,
            evidence=evidence,
            request=request,
            occurred_at=now,
        )
        state.status = ConsentState.Status.ACTIVE
        state.consent_text = text
        state.confirmed_at = now
        state.last_event = event
        state.save(update_fields=["status", "consent_text", "confirmed_at", "last_event"])
    lift_erasure_suppression(subscriber, evidence, now)
    _apply_profile(subscriber, request.profile)
    request.confirmed_at = now
    request.save(update_fields=["confirmed_at"])
    request.subscriber = subscriber
    return request


def lift_erasure_suppression(subscriber: Subscriber, evidence: Evidence, now: datetime) -> None:
    """An erased address came back, and a click from its mailbox proved it is its owner's
    (double opt-in, or a confirmed address change): the suppression left by the erasure has
    done its job. A bounce or complaint one stays."""
    erasure = Suppression.objects.filter(email_hash=subscriber.email_hash, reason=Suppression.Reason.ERASURE)
    if not subscriber.email_hash or not erasure.exists():
        return
    erasure.delete()
    ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.SUPPRESSION_LIFTED,
        consent_text=None,
        evidence=dataclasses.replace(
            evidence, submitted={**evidence.submitted, "suppression": str(Suppression.Reason.ERASURE)}
        ),
        occurred_at=now,
    )


def _apply_profile(subscriber: Subscriber, profile: dict[str, str]) -> None:
    fields = ["name", "address_line1", "address_line2", "postal_code", "city", "country"]
    changed = [f for f in fields if profile.get(f) and profile[f] != getattr(subscriber, f)]
    for f in changed:
        setattr(subscriber, f, profile[f])
    if changed:
        subscriber.save(update_fields=changed)


def confirmations_expire(*, now: datetime | None = None, batch_size: int = 500) -> int:
    """Close every unconfirmed request past its expiry; its pending consents become expired.

    Works in small transactions, one request at a time, so a backlog never holds locks long.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        ids = list(
            ConfirmationRequest.objects.filter(
                confirmed_at__isnull=True, expired_at__isnull=True, expires_at__lte=now
            ).values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return expired
        for request_id in ids:
            expired += _confirmation_expire(request_id=request_id, now=now)


@transaction.atomic
def _confirmation_expire(*, request_id: Any, now: datetime) -> int:
    request = (
        ConfirmationRequest.objects.select_for_update()
        .filter(pk=request_id, confirmed_at__isnull=True, expired_at__isnull=True)
        .first()
    )
    if request is None:
        return 0
    subscriber = Subscriber.objects.select_for_update().get(pk=request.subscriber_id)
    evidence = Evidence(source=ConsentEvent.Source.SYSTEM, actor=ConsentEvent.Actor.SYSTEM)
    for state in (
        ConsentState.objects.select_for_update()
        .filter(subscriber=subscriber, status=ConsentState.Status.PENDING, last_event__request=request)
        .select_related("purpose", "consent_text")
    ):
        event = ledger.append(
            subscriber,
            purpose=state.purpose,
            channel=state.channel,
            kind=ConsentEvent.Kind.EXPIRED,
            consent_text=state.consent_text,
            evidence=evidence,
            request=request,
            occurred_at=now,
        )
        state.status = ConsentState.Status.EXPIRED
        state.last_event = event
        state.save(update_fields=["status", "last_event"])
    # The pages and the email promise it: an unconfirmed request is deleted. The ledger keeps
    # that it was asked and expired; what the visitor typed and sent goes.
    request.expired_at = now
    request.profile = {}
    request.save(update_fields=["expired_at", "profile"])
    data_rights.evidence_erase(
        ConsentEvidence.objects.filter(event__request=request, event__kind=ConsentEvent.Kind.REQUESTED), now
    )
    if _never_agreed(subscriber):
        data_rights.subscriber_erase(
            subscriber=subscriber,
            evidence=Evidence(
                source=ConsentEvent.Source.SYSTEM,
                actor=ConsentEvent.Actor.SYSTEM,
                submitted={"reason": "a signup never confirmed"},
            ),
            suppress=False,
        )
    return 1


def _never_agreed(subscriber: Subscriber) -> bool:
    """Nothing but expired requests: an address someone typed and nobody ever confirmed."""
    return (
        subscriber.erased_at is None
        and not ConsentState.objects.filter(subscriber=subscriber)
        .exclude(status=ConsentState.Status.EXPIRED)
        .exists()
        and not ConfirmationRequest.objects.filter(subscriber=subscriber).open().exists()
        and not EmailChangeRequest.objects.filter(subscriber=subscriber).open().exists()
    )


@transaction.atomic
def confirmation_mark_sent(*, request_id: Any) -> None:
    ConfirmationRequest.objects.filter(pk=request_id, email_sent_at__isnull=True).update(
        email_sent_at=timezone.now()
    )


@transaction.atomic
def consent_text_publish(
    *, purpose: Purpose, language: str, content: dict[str, str], published_by_id: int | None = None
) -> ConsentText:
    """Publish the next version of ``purpose``'s consent text in ``language``."""
    Purpose.objects.select_for_update().get(pk=purpose.pk)  # serialise version numbers
    latest = ConsentText.objects.filter(purpose=purpose, language=language).order_by("-version").first()
    text = ConsentText(
        purpose=purpose,
        language=language,
        version=(latest.version + 1) if latest else 1,
        published_by_id=published_by_id,
        **{name: content[name] for name in ConsentText.CONTENT_FIELDS},
    )
    text.digest = ledger.text_digest(text)
    text.save(force_insert=True)
    return text


def _tasks() -> Any:
    # Imported late: the tasks module imports this one.
    from subscribers import tasks

    return tasks

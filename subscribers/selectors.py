"""Reads about subscribers and consent. No writes here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from subscribers import ledger, links
from subscribers.id_arrays import in_ids
from subscribers.models import (
    Channel,
    ConfirmationRequest,
    ConsentEvent,
    ConsentState,
    ConsentText,
    EmailChangeRequest,
    Frequency,
    Purpose,
    Subscriber,
    Suppression,
)


@dataclass(frozen=True)
class SignupOffer:
    """A purpose as offered on the signup page, with the exact text version shown."""

    purpose: Purpose
    text: ConsentText


def signup_offers(*, language: str | None = None) -> list[SignupOffer]:
    """Active purposes with their latest published text, in ``language`` or the default one.

    Kept per process under what decides them: every active purpose's row and the id,
    digest and publication time of its latest text in each language wanted, read fresh
    on every call in one plain statement. A new text version, or any edit to a purpose
    however it is made (admin, shell, migration), changes that key, so a cached list is
    never stale. The cached instances are shared between requests: read, never change them.
    """
    wanted = tuple(dict.fromkeys(lang for lang in (language, settings.LANGUAGE_CODE) if lang))
    key = (wanted, _offers_fingerprint(wanted))
    offers = _offers_kept.get(key)
    if offers is None:
        offers = _offers_load(wanted, text_ids=[row[-3] for row in key[1]])
        if len(_offers_kept) >= _OFFERS_KEPT:
            _offers_kept.clear()
        _offers_kept[key] = offers
    return list(offers)


# The ORM's version of the offers (compiling a join, building every text version's model
# instance) was about a third of a sign-up's CPU, paid on the page and again on the POST;
# this statement is a tenth of that and needs no invalidation.
_OFFERS_KEY_SQL = """
SELECT p.id, p.slug, p.name, p.description, p.offers_email, p.offers_postal, p.position, p.kind,
       t.language, t.id, t.digest, t.published_at
FROM subscribers_consenttext t JOIN subscribers_purpose p ON p.id = t.purpose_id
WHERE p.is_active AND t.language IN ({languages})
  AND NOT EXISTS (
    SELECT 1 FROM subscribers_consenttext n
    WHERE n.purpose_id = t.purpose_id AND n.language = t.language AND n.version > t.version
  )
ORDER BY p.id, t.language
"""
_offers_kept: dict[tuple[Any, ...], list[SignupOffer]] = {}
_OFFERS_KEPT = 32


def _offers_fingerprint(wanted: tuple[str, ...]) -> tuple[tuple[Any, ...], ...]:
    sql = _OFFERS_KEY_SQL.format(languages=", ".join(["%s"] * len(wanted)))
    with connection.cursor() as cursor:
        cursor.execute(sql, wanted)
        return tuple(tuple(row) for row in cursor.fetchall())


def _offers_load(wanted: tuple[str, ...], *, text_ids: list[int]) -> list[SignupOffer]:
    # By id: exactly the texts of the key (texts never change once published).
    best: dict[int, ConsentText] = {}
    for text in ConsentText.objects.filter(pk__in=text_ids).select_related("purpose"):
        current = best.get(text.purpose_id)
        if current is None or (current.language != wanted[0] and text.language == wanted[0]):
            best[text.purpose_id] = text
    offers = [SignupOffer(purpose=t.purpose, text=t) for t in best.values()]
    return sorted(offers, key=lambda o: (o.purpose.position, o.purpose.pk))


def linked_subscriber(claims: links.LinkClaims | None) -> Subscriber | None:
    """The subscriber a valid link points at, unless erased or the link was revoked."""
    if claims is None:
        return None
    subscriber = Subscriber.objects.filter(pk=claims.subscriber_id, email__isnull=False).first()
    if subscriber is None:
        return None
    if claims.generation is not None and claims.generation != subscriber.link_generation:
        return None
    return subscriber


def preferences_token(subscriber: Subscriber) -> str:
    return links.make("preferences", subscriber.pk, generation=subscriber.link_generation)


def subscribers_with_address(email: str) -> QuerySet[Subscriber]:
    """The subscriber holding this address, in any case: at most one row.

    ``LOWER(email) = LOWER(%s)``, the expression of the unique index, so it is one index
    lookup; ``email__iexact`` compares ``UPPER()``s, which no index has (a scan of every row).
    """
    return Subscriber.objects.alias(email_lower=Lower("email")).filter(
        email_lower=Lower(Value(email.strip()))
    )


def subscriber_for_address(email: str) -> Subscriber | None:
    """The subscriber holding this address (any case), or None: erased ones hold none."""
    return subscribers_with_address(email).first()


def subscriber_for_address_hash(address_key: str) -> Subscriber | None:
    """The subscriber holding the address with this keyed hash (``services.address_hash``)."""
    if not address_key:
        return None
    return Subscriber.objects.filter(email_hash=address_key, email__isnull=False).first()


def active_consents(*, subscriber: Subscriber) -> QuerySet[ConsentState]:
    return ConsentState.objects.filter(
        subscriber=subscriber, status=ConsentState.Status.ACTIVE
    ).select_related("purpose", "consent_text")


def open_consents(*, subscriber: Subscriber) -> QuerySet[ConsentState]:
    """Consents a withdrawal of everything would close: active, or awaiting confirmation."""
    return ConsentState.objects.filter(
        subscriber=subscriber, status__in=(ConsentState.Status.ACTIVE, ConsentState.Status.PENDING)
    ).select_related("purpose")


@dataclass(frozen=True)
class ChannelPreference:
    """One switch of the preference centre: a purpose on one channel."""

    channel: Channel
    state: ConsentState | None
    offered: bool  # may be switched on (the purpose is offered with a current text)

    @property
    def is_on(self) -> bool:
        return self.state is not None and self.state.status == ConsentState.Status.ACTIVE


@dataclass(frozen=True)
class PurposePreferences:
    """A purpose as the preference centre shows it: its wording and a switch per channel."""

    purpose: Purpose
    text: ConsentText  # the current wording, or the last one agreed to if no longer offered
    channels: list[ChannelPreference]

    @property
    def email(self) -> ConsentState | None:
        """The active email consent, which is what a frequency choice applies to.

        None for the tracking purpose: it sends nothing, so there is no "how often".
        """
        if self.purpose.is_tracking:
            return None
        return next((c.state for c in self.channels if c.channel == Channel.EMAIL and c.is_on), None)


def preference_centre(*, subscriber: Subscriber) -> list[PurposePreferences]:
    """Every purpose this subscriber has (active or awaiting confirmation) or could have."""
    offers = {o.purpose.pk: o for o in signup_offers(language=subscriber.language)}
    held: dict[int, dict[str, ConsentState]] = {}
    purposes = {pk: o.purpose for pk, o in offers.items()}
    open_statuses = (ConsentState.Status.ACTIVE, ConsentState.Status.PENDING)
    for state in ConsentState.objects.filter(subscriber=subscriber).select_related("purpose", "consent_text"):
        held.setdefault(state.purpose_id, {})[state.channel] = state
        if state.status in open_statuses:
            purposes.setdefault(state.purpose_id, state.purpose)
    rows = []
    for purpose in sorted(purposes.values(), key=lambda p: (p.position, p.pk)):
        states = held.get(purpose.pk, {})
        offer = offers.get(purpose.pk)
        text = offer.text if offer else max((s.consent_text for s in states.values()), key=lambda t: t.pk)
        channels = [
            ChannelPreference(
                channel=channel,
                state=states.get(channel),
                offered=offer is not None and channel in purpose.channels,
            )
            for channel in Channel
            if channel in purpose.channels or channel in states
        ]
        rows.append(PurposePreferences(purpose=purpose, text=text, channels=channels))
    return rows


def open_email_change(*, subscriber: Subscriber) -> EmailChangeRequest | None:
    """The address change still waiting for its new address to confirm, if any."""
    return EmailChangeRequest.objects.open().filter(subscriber=subscriber).first()


@dataclass(frozen=True)
class UnsentEmails:
    """Ids of the double opt-in and address-change emails still waiting for their task."""

    confirmations: list[Any]
    change_confirmations: list[Any]
    change_notices: list[Any]


def unsent_emails(*, older_than: timedelta, limit: int = 1000) -> UnsentEmails:
    """Emails still owed ``older_than`` after they were asked for: their task never reached the
    broker (it was down when the request committed), or was lost with it. Only requests that
    can still be used: a confirmation link that has expired is not worth sending."""
    now = timezone.now()
    cutoff = now - older_than
    confirmations = ConfirmationRequest.objects.open(now).filter(
        email_sent_at__isnull=True, created_at__lt=cutoff
    )
    changes = EmailChangeRequest.objects.filter(cancelled_at__isnull=True, created_at__lt=cutoff)
    return UnsentEmails(
        confirmations=list(confirmations.order_by("created_at").values_list("pk", flat=True)[:limit]),
        change_confirmations=list(
            changes.open(now)
            .filter(confirmation_sent_at__isnull=True)
            .order_by("created_at")
            .values_list("pk", flat=True)[:limit]
        ),
        # The notice to the old address is owed even once the change is confirmed.
        change_notices=list(
            changes.filter(notice_sent_at__isnull=True, expires_at__gt=now - older_than)
            .order_by("created_at")
            .values_list("pk", flat=True)[:limit]
        ),
    )


def suppression_in_force(*, subscriber: Subscriber) -> Suppression | None:
    """Why no mail goes to the subscriber's address whatever they choose, if something stops it."""
    if not subscriber.email_hash:
        return None
    return Suppression.objects.filter(email_hash=subscriber.email_hash, lifted_at__isnull=True).first()


# How long "at most weekly" and "at most monthly" hold mail back after the last one sent.
FREQUENCY_GAPS = {Frequency.WEEKLY: timedelta(days=7), Frequency.MONTHLY: timedelta(days=30)}


def _reachable() -> Q:
    """Active consent and an address we still hold."""
    return Q(status=ConsentState.Status.ACTIVE, subscriber__email__isnull=False)


def _not_suppressed() -> Q:
    hash_ = OuterRef("subscriber__email_hash")
    in_force = Suppression.objects.filter(email_hash=hash_, lifted_at__isnull=True)  # lifted ones are history
    return ~Q(Exists(in_force))


def _not_paused(now: datetime) -> Q:
    return Q(subscriber__paused_until__isnull=True) | Q(subscriber__paused_until__lte=now)


def _frequency_allows(now: datetime) -> Q:
    allowed = Q(frequency=Frequency.EVERY) | Q(last_sent_at__isnull=True)
    for frequency, gap in FREQUENCY_GAPS.items():
        allowed |= Q(frequency=frequency, last_sent_at__lte=now - gap)
    return allowed


def sendable_consents(
    *, purpose_id: int, channel: Channel | str = Channel.EMAIL, now: datetime | None = None
) -> QuerySet[ConsentState]:
    """THE answer to "who may we contact for this purpose on this channel, now?".

    Dispatch (the audience snapshot and the per-batch re-check), previews and counts all
    call this one function, so they can never disagree. Active consent, an address we
    still hold, not suppressed, not paused, and not held back by the subscriber's own
    choice of how often they hear from us for this purpose.
    """
    now = now or timezone.now()
    return ConsentState.objects.filter(
        _reachable() & _not_suppressed() & _not_paused(now) & _frequency_allows(now),
        purpose_id=purpose_id,
        channel=channel,
    )


def audience_breakdown(*, purpose_id: int, now: datetime | None = None) -> dict[str, int]:
    """How many subscribers with an address may be emailed for a purpose, and why the rest may not.

    Each subscriber is counted once, under the first reason that holds them back, in this
    order: no consent, unconfirmed, suppressed, paused, frequency.
    """
    now = now or timezone.now()
    states = ConsentState.objects.filter(purpose_id=purpose_id, channel=Channel.EMAIL)
    reachable = _reachable()
    unsuppressed = reachable & _not_suppressed()
    unpaused = unsuppressed & _not_paused(now)
    counts = states.aggregate(
        reachable=Count("pk", filter=reachable),
        unsuppressed=Count("pk", filter=unsuppressed),
        unpaused=Count("pk", filter=unpaused),
        eligible=Count("pk", filter=unpaused & _frequency_allows(now)),
        unconfirmed=Count(
            "pk", filter=Q(status=ConsentState.Status.PENDING, subscriber__email__isnull=False)
        ),
    )
    with_address = Subscriber.objects.filter(email__isnull=False).count()
    return {
        "eligible": counts["eligible"],
        "no_consent": with_address - counts["reachable"] - counts["unconfirmed"],
        "suppressed": counts["reachable"] - counts["unsuppressed"],
        "unconfirmed": counts["unconfirmed"],
        "paused": counts["unsuppressed"] - counts["unpaused"],
        "frequency": counts["unpaused"] - counts["eligible"],
    }


def trackable_subscriber_ids(*, subscriber_ids: Iterable[int]) -> set[int]:
    """Which of these subscribers may have opens and clicks of their emails noted, now.

    Active consent to the tracking purpose (``Purpose.Kind.TRACKING``), on email, and an
    address we still hold. One query for a whole batch; never a reason to send anything.
    """
    ids = list(subscriber_ids)
    if not ids:
        return set()
    return set(
        ConsentState.objects.filter(
            _reachable(),
            subscriber_id__in=in_ids(ids),
            purpose__kind=Purpose.Kind.TRACKING,
            channel=Channel.EMAIL,
        )
        .order_by()
        .values_list("subscriber_id", flat=True)
    )


def has_active_consent(
    *, subscriber_id: int, purpose_id: int, channel: Channel | str = Channel.EMAIL
) -> bool:
    """One indexed lookup: may we contact this subscriber for this purpose on this channel now?"""
    return ConsentState.objects.filter(
        subscriber_id=subscriber_id,
        purpose_id=purpose_id,
        channel=channel,
        status=ConsentState.Status.ACTIVE,
    ).exists()


def event_evidence(event: ConsentEvent) -> dict[str, Any]:
    """What a ledger event's evidence says, as proofs and data exports show it."""
    evidence = getattr(event, "evidence", None)
    return {
        "ip_address": evidence.ip_address if evidence else None,
        "user_agent": evidence.user_agent if evidence else "",
        # Older evidence kept the link's token in the URL: shown without it.
        "page_url": links.page_without_token(evidence.page_url) if evidence else "",
        "submitted": evidence.submitted if evidence else {},
    }


def consent_proof(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything a regulator asks for under GDPR Art. 7(1), per purpose and channel.

    For each consent: the exact text version shown (in full), when and how it was
    requested and confirmed (with IP address and user agent), and any withdrawal.
    """
    events = (
        ConsentEvent.objects.filter(subscriber=subscriber)
        .select_related("purpose", "consent_text", "evidence")
        .order_by("seq")
    )
    texts: dict[int, ConsentText] = {}
    timeline = []
    for event in events:
        text = event.consent_text
        if text is not None:
            texts[text.pk] = text
        evidence = getattr(event, "evidence", None)
        timeline.append(
            {
                "position": event.seq,
                "event": event.kind,
                "purpose": event.purpose.slug if event.purpose else None,
                "channel": event.channel or None,
                "consent_text": {"id": text.pk, "version": text.version, "language": text.language}
                if text
                else None,
                "at": event.occurred_at.isoformat(),
                "source": event.source,
                "actor": event.actor,
                "actor_label": event.actor_label,
                "confirmation_request": str(event.request_id) if event.request_id else None,
                **event_evidence(event),
                "evidence_erased_at": evidence.erased_at.isoformat()
                if evidence and evidence.erased_at
                else None,
                "hash": event.hash,
                "prev_hash": event.prev_hash,
            }
        )
    states = ConsentState.objects.filter(subscriber=subscriber).select_related("purpose", "consent_text")
    problems = [str(p) for p in ledger.verify(subscriber_ids=[subscriber.pk])]
    return {
        "subscriber": {
            "id": subscriber.pk,
            "email": subscriber.email,
            "name": subscriber.name,
            "created_at": subscriber.created_at.isoformat(),
        },
        "controller": {"name": settings.ORGANISATION_NAME, "address": settings.ORGANISATION_ADDRESS},
        "current": [
            {
                "purpose": s.purpose.slug,
                "purpose_name": s.purpose.name,
                # "tracking": consent to noting opens and clicks, not to receiving mail.
                "purpose_kind": s.purpose.kind,
                "channel": s.channel,
                "status": s.status,
                "consent_text_version": s.consent_text.version,
                "requested_at": s.requested_at.isoformat(),
                "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else None,
                "withdrawn_at": s.withdrawn_at.isoformat() if s.withdrawn_at else None,
            }
            for s in states
        ],
        "events": timeline,
        "consent_texts": [
            {
                "id": t.pk,
                "purpose": t.purpose.slug,
                "language": t.language,
                "version": t.version,
                "published_at": t.published_at.isoformat(),
                "digest": t.digest,
                **{name: getattr(t, name) for name in ConsentText.CONTENT_FIELDS},
            }
            for t in texts.values()
        ],
        "ledger_verified": not problems,
        "ledger_problems": problems,
    }

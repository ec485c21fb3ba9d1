"""Erasure on request (GDPR Art. 17): the person's data goes, the proof of what happened stays.
And the audit of staff being shown a subscriber's personal data (``subscriber_access_record``).

What stays is pseudonymous: the subscriber row (an id, the language, when it was created),
its consent states and its hash chain of ledger events, which name purposes, text
versions and times but no address, name or IP. The address survives only as the keyed
hash of an ``erasure`` suppression, so it is never mailed again unless its owner signs up
anew and confirms (``subscription_confirm`` then removes that suppression).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from subscribers import exports, ledger
from subscribers.ledger import Evidence
from subscribers.models import (
    ConfirmationRequest,
    ConsentEvent,
    ConsentEvidence,
    EmailChangeRequest,
    Subscriber,
    Suppression,
)
from subscribers.services.consent import consents_withdraw_all

logger = logging.getLogger(__name__)

PROFILE_FIELDS = ("name", "address_line1", "address_line2", "postal_code", "city", "country")


class ErasureError(Exception):
    """The subscriber cannot be erased (already erased); the message says why, for staff."""


@transaction.atomic
def subscriber_erase(*, subscriber: Subscriber, evidence: Evidence, suppress: bool = True) -> ConsentEvent:
    """Erase ``subscriber``'s personal data and record it as a purpose-less ``erased`` event.

    ``suppress=False`` keeps no hash of the address either: for an address that never
    agreed to anything and was never mailed but for the request to confirm.

    ``evidence`` must carry no personal data of the subscriber (no IP, user agent or page
    URL): it is the one evidence record left intact. Staff erasures put who did it in
    ``actor_user_id``/``actor_label`` and may put a request reference in ``submitted``.
    Every consent still open is withdrawn first, so the chain shows the person left.
    Registered erasure hooks (``exports.register_erasure_hook``) run in this transaction.
    """
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.erased_at is not None or subscriber.email is None:
        raise ErasureError(f"Subscriber #{subscriber.pk} is already erased.")
    email_hash = subscriber.email_hash
    now = timezone.now()
    consents_withdraw_all(subscriber=subscriber, evidence=evidence)
    # The withdrawals moved the chain head on their own copies of the row.
    subscriber.refresh_from_db(fields=["ledger_seq", "ledger_head"])
    event = ledger.append(
        subscriber,
        purpose=None,
        channel="",
        kind=ConsentEvent.Kind.ERASED,
        consent_text=None,
        evidence=evidence,
        occurred_at=now,
    )
    evidence_erase(ConsentEvidence.objects.filter(event__subscriber=subscriber).exclude(event=event), now)
    ConfirmationRequest.objects.filter(subscriber=subscriber).update(profile={})
    ConfirmationRequest.objects.filter(
        subscriber=subscriber, confirmed_at__isnull=True, expired_at__isnull=True
    ).update(expired_at=now)
    # Closed changes too: each one names an address the person used.
    EmailChangeRequest.objects.filter(subscriber=subscriber).delete()
    if suppress:
        _suppress(email_hash, now)
    # Before the profile is blanked, so a hook can still find its rows by address or hash.
    for hook in exports.erasure_hooks():
        hook(subscriber)
    subscriber.email = None
    subscriber.email_hash = ""
    for name in PROFILE_FIELDS:
        setattr(subscriber, name, "")
    subscriber.paused_until = None
    subscriber.erased_at = now
    subscriber.link_generation += 1  # every preferences link already sent stops working
    subscriber.save(
        update_fields=["email", "email_hash", *PROFILE_FIELDS, "paused_until", "erased_at", "link_generation"]
    )
    # The admin's history names objects by str(), which was the address.
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Subscriber), object_id=str(subscriber.pk)
    ).update(object_repr=str(subscriber))
    logger.info("subscriber %s erased", subscriber.pk)
    return event


@transaction.atomic
def subscriber_access_record(*, subscriber: Subscriber, staff_user: Any, what: str) -> LogEntry:
    """Note in the admin log that ``staff_user`` was shown ``subscriber``'s personal data
    (``what``: "Downloaded the proof of consent (JSON)."), as campaign exports are noted.

    GDPR Art. 5(2) and 32: who had the personal data and when must be demonstrable. The
    admin log has no "viewed" flag; CHANGE with the message is what its history page shows.
    """
    return LogEntry.objects.create(
        user_id=staff_user.pk,
        content_type=ContentType.objects.get_for_model(Subscriber),
        object_id=str(subscriber.pk),
        object_repr=str(subscriber)[:200],
        action_flag=CHANGE,
        change_message=what,
    )


def evidence_erase(evidence: QuerySet[ConsentEvidence], now: datetime) -> None:
    """Blank the personal data behind ledger events; the events and their chain stay intact.

    ``ledger.verify`` skips the digest of erased evidence; the events' own hashes still hold.
    """
    evidence.filter(erased_at__isnull=True).update(
        ip_address=None, user_agent="", page_url="", submitted={}, salt="", erased_at=now
    )


def _suppress(email_hash: str, now: datetime) -> None:
    """An ``erasure`` suppression, unless one (a bounce, a complaint …) is in force already."""
    if not email_hash or Suppression.objects.filter(email_hash=email_hash, lifted_at__isnull=True).exists():
        return
    try:
        with transaction.atomic():
            Suppression.objects.create(
                email_hash=email_hash, reason=Suppression.Reason.ERASURE, created_at=now
            )
    except IntegrityError:
        pass  # suppressed a moment ago by another path: one in force is all that is needed

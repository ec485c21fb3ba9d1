"""Transactional emails of the subscribers app (double opt-in and its replies, address changes).

Each function reads what it needs, sends outside any transaction, then records the send.
The double opt-in and address-change emails are sent under a claim (``send_claim``), so
that two tasks for the same email, the original and the sweep's copy, never both send it.
Templates live at ``templates/subscribers/email/<name>_{subject.txt,body.txt,body.html}``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from subscribers import selectors, services, tokens
from subscribers.addresses import smtp_address
from subscribers.models import ConfirmationRequest, ConsentEvent, EmailChangeRequest, Subscriber

logger = logging.getLogger(__name__)


def build_email(name: str, *, to: str, context: dict[str, Any]) -> EmailMultiAlternatives:
    context = {
        "organisation_name": settings.ORGANISATION_NAME,
        "organisation_address": settings.ORGANISATION_ADDRESS,
        "site_url": settings.SITE_URL,
        **context,
    }
    prefix = f"subscribers/email/{name}"
    # A subject is one line: a newline there would start a new header, and other control
    # characters (NUL, ESC …) have no place in one either.
    rendered = render_to_string(f"{prefix}_subject.txt", context)
    subject = " ".join("".join(ch if ch >= " " and ch != "\x7f" else " " for ch in rendered).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{prefix}_body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[smtp_address(to)],
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string(f"{prefix}_body.html", context), "text/html")
    return message


def site_link(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def preferences_link(subscriber: Subscriber) -> str:
    return site_link(reverse("subscribers:preferences", args=[selectors.preferences_token(subscriber)]))


@contextmanager
def send_claim(kind: str, record_id: Any) -> Iterator[bool]:
    """Yield whether this task may send ``kind``'s email for ``record_id``: no other task is.

    Read the sent mark and send inside the block, and write the mark before it ends. The mark
    alone cannot stop two copies running at the same moment (the one queued at the request
    and the one ``tasks.send_unsent_emails`` queued): both would read it empty and send. The
    claim is released when the block ends, sent or failed, so a retry can go at once; a worker
    that dies mid-send leaves it to expire after ``TRANSACTIONAL_EMAIL_CLAIM_SECONDS``, which
    delays the email rather than losing it. Without the cache nothing is sent: the error
    propagates, the mark stays empty, and the sweep queues the email again.
    """
    key = f"subscribers.send_claim:{kind}:{record_id}"
    token = uuid.uuid4().hex
    # Redis SET NX in production: exactly one of two racing tasks gets it.
    if not cache.add(key, token, timeout=settings.TRANSACTIONAL_EMAIL_CLAIM_SECONDS):
        logger.info("%s email for %s is being sent by another task: this copy does nothing", kind, record_id)
        yield False
        return
    try:
        yield True
    finally:
        _release(key, token)


def _release(key: str, token: str) -> None:
    try:
        # A claim that outlived its timeout may be another task's by now: leave that one be.
        if cache.get(key) == token:
            cache.delete(key)
    except Exception as exc:  # redis-py raises its own ConnectionError, not an OSError
        logger.warning("could not release %s, it lapses by itself: %s", key, exc)


def send_confirmation(*, request_id: str) -> bool:
    with send_claim("confirmation", request_id) as claimed:
        return claimed and _send_confirmation(request_id)


def _send_confirmation(request_id: str) -> bool:
    request = ConfirmationRequest.objects.select_related("subscriber").filter(pk=request_id).first()
    if request is None or not request.is_open or request.email_sent_at or not request.subscriber.email:
        return False
    items = (
        ConsentEvent.objects.filter(request=request, kind=ConsentEvent.Kind.REQUESTED)
        .select_related("purpose", "consent_text")
        .order_by("seq")
    )
    token = tokens.confirmation_token(request.pk)
    message = build_email(
        "confirm",
        to=request.subscriber.email,
        context={
            "name": request.profile.get("name", ""),
            "items": list(items),
            "confirm_url": site_link(reverse("subscribers:confirm", args=[token])),
            "expires_at": request.expires_at,
            "preferences_url": preferences_link(request.subscriber),
        },
    )
    message.send()
    services.confirmation_mark_sent(request_id=request.pk)
    logger.info("confirmation email sent to subscriber %s", request.subscriber_id)
    return True


def send_already_subscribed(*, subscriber_id: int) -> bool:
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or not subscriber.email:
        return False
    message = build_email(
        "already_subscribed",
        to=subscriber.email,
        context={
            "name": subscriber.name,
            "consents": selectors.active_consents(subscriber=subscriber),
            "preferences_url": preferences_link(subscriber),
        },
    )
    message.send()
    logger.info("already-subscribed notice sent to subscriber %s", subscriber.pk)
    return True


def send_manage_link(*, subscriber_id: int) -> bool:
    """A fresh preferences link, asked for on the manage page or from a stale link.

    The token is made now, at sending, so the link counts as fresh (``FRESH_LINK_HOURS``)
    from the moment it leaves. Nothing goes to an erased subscriber.
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id, email__isnull=False).first()
    if subscriber is None or not subscriber.email:
        return False
    message = build_email(
        "manage_link",
        to=subscriber.email,
        context={
            "name": subscriber.name,
            "preferences_url": preferences_link(subscriber),
            "fresh_hours": settings.FRESH_LINK_HOURS,
        },
    )
    message.send()
    logger.info("manage link sent to subscriber %s", subscriber.pk)
    return True


def send_email_change_confirmation(*, change_id: str) -> bool:
    """To the new address: a link to confirm that it is theirs."""
    with send_claim("email_change_confirmation", change_id) as claimed:
        return claimed and _send_email_change_confirmation(change_id)


def _send_email_change_confirmation(change_id: str) -> bool:
    change = EmailChangeRequest.objects.select_related("subscriber").filter(pk=change_id).first()
    if change is None or not change.is_open or change.confirmation_sent_at or not change.subscriber.email:
        return False
    token = tokens.email_change_token(change.pk)
    message = build_email(
        "email_change_confirm",
        to=change.new_email,
        context={
            "name": change.subscriber.name,
            "confirm_url": site_link(reverse("subscribers:email_change_confirm", args=[token])),
            "expires_at": change.expires_at,
        },
    )
    message.send()
    services.email_change_mark_sent(change_id=change.pk, confirmation=True)
    logger.info("address-change confirmation sent for subscriber %s", change.subscriber_id)
    return True


def contact_email() -> str:
    """Where a person can write to a human about their mail (emails and pages say it)."""
    return settings.UNSUBSCRIBE_MAILTO or settings.SENDER_EMAIL


def send_email_change_notice(*, change_id: str) -> bool:
    """To the old address: someone asked to move this subscription elsewhere."""
    with send_claim("email_change_notice", change_id) as claimed:
        return claimed and _send_email_change_notice(change_id)


def _send_email_change_notice(change_id: str) -> bool:
    change = EmailChangeRequest.objects.select_related("subscriber").filter(pk=change_id).first()
    if change is None or change.cancelled_at is not None or change.notice_sent_at is not None:
        return False
    to = change.subscriber.email if change.confirmed_at is None else _address_before(change)
    if not to:
        return False
    message = build_email(
        "email_change_notice",
        to=to,
        context={"name": change.subscriber.name, "contact_email": contact_email()},
    )
    message.send()
    services.email_change_mark_sent(change_id=change.pk, notice=True)
    logger.info("address-change notice sent for subscriber %s", change.subscriber_id)
    return True


def _address_before(change: EmailChangeRequest) -> str | None:
    """The address a confirmed change moved away from: the notice still goes there, even
    when the new address was confirmed before the notice went out (a retried send)."""
    moved = (
        ConsentEvent.objects.filter(
            subscriber_id=change.subscriber_id,
            kind=ConsentEvent.Kind.EMAIL_CHANGED,
            occurred_at__gte=change.created_at,
        )
        .select_related("evidence")
        .order_by("seq")
        .first()
    )
    evidence = getattr(moved, "evidence", None) if moved else None
    return evidence.submitted.get("old_email") if evidence else None

"""Celery entry points of the subscribers app: ids in, one call out."""

from __future__ import annotations

import logging
from datetime import timedelta
from smtplib import SMTPException
from typing import Any

from anymail.exceptions import AnymailAPIError
from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import OperationalError

from subscribers import audience_counts, emails, selectors, services
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)

# Mail servers and providers fail transiently; a confirmation delayed is better than lost.
SEND_ERRORS = (SMTPException, OSError, AnymailAPIError)
# Every transactional email: retried with backoff for up to about a day.
EMAIL_RETRY: dict[str, Any] = {
    "autoretry_for": SEND_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "max_retries": 8,
}


def queue_or_log(task: Any, *args: Any) -> bool:
    """Queue ``task`` for a page that must answer whether or not the broker is reachable.

    With the broker down the error is logged and the page goes on; only for work that is
    asked for again or swept up later (a fresh-link request, an audience count).
    """
    try:
        task.delay(*args)
    except (OperationalError, OSError):
        logger.exception("could not queue %s: the broker is unreachable", task.name)
        return False
    return True


@shared_task(name="subscribers.send_confirmation_email", **EMAIL_RETRY)
def send_confirmation_email(request_id: str) -> None:
    emails.send_confirmation(request_id=request_id)


@shared_task(name="subscribers.send_already_subscribed_email", **EMAIL_RETRY)
def send_already_subscribed_email(subscriber_id: int) -> None:
    emails.send_already_subscribed(subscriber_id=subscriber_id)


@shared_task(name="subscribers.send_email_change_confirmation", **EMAIL_RETRY)
def send_email_change_confirmation(change_id: str) -> None:
    emails.send_email_change_confirmation(change_id=change_id)


@shared_task(name="subscribers.send_email_change_notice", **EMAIL_RETRY)
def send_email_change_notice(change_id: str) -> None:
    emails.send_email_change_notice(change_id=change_id)


@shared_task(name="subscribers.send_manage_link_email", **EMAIL_RETRY)
def send_manage_link_email(subscriber_id: int) -> None:
    emails.send_manage_link(subscriber_id=subscriber_id)


@shared_task(name="subscribers.send_manage_link_for_address")
def send_manage_link_for_address(address_key: str) -> bool:
    """The "manage my subscription" form's request: the address arrives as its keyed hash."""
    subscriber = selectors.subscriber_for_address_hash(address_key)
    return subscriber is not None and queue_manage_link(subscriber)


def queue_manage_link(subscriber: Subscriber) -> bool:
    """Queue the fresh-link email, unless this address was sent one in the last few minutes."""
    return _queue_once_per_interval(
        send_manage_link_email, "manage_link", subscriber.pk, subscriber.email_hash
    )


def queue_already_subscribed(subscriber_id: int, address_key: str) -> bool:
    """Queue the "you're already subscribed" email, at most once per address per interval:
    anyone can type an address on the signup page, however often."""
    return _queue_once_per_interval(
        send_already_subscribed_email, "already_subscribed", subscriber_id, address_key
    )


def _queue_once_per_interval(task: Any, kind: str, subscriber_id: int, address_key: str) -> bool:
    """Queue ``task`` for the subscriber unless ``kind`` went to this address within
    ``MANAGE_LINK_INTERVAL_MINUTES``, whoever asks.

    The cache key is the address's keyed hash: the cache never holds the address itself.
    The email is its own task, so a retried send never meets the interval it claimed.
    """
    key = f"subscribers.{kind}:{address_key or subscriber_id}"
    if not cache.add(key, 1, timeout=settings.MANAGE_LINK_INTERVAL_MINUTES * 60):
        logger.info("%s email for subscriber %s held back: one was sent recently", kind, subscriber_id)
        return False
    task.delay(subscriber_id)
    return True


@shared_task(name="subscribers.send_unsent_emails")
def send_unsent_emails() -> int:
    """Queue again the emails a request committed without (the broker was down then).

    The first task may only be late (it waited in the queue longer than
    ``UNSENT_EMAIL_AFTER_SECONDS``), so an email can be queued twice; it is still sent once.
    Each copy sends under the email's claim (``emails.send_claim``) and checks the sent mark
    inside it: a copy that runs while the other sends does nothing, a later one finds the mark.
    """
    unsent = selectors.unsent_emails(older_than=timedelta(seconds=settings.UNSENT_EMAIL_AFTER_SECONDS))
    for request_id in unsent.confirmations:
        send_confirmation_email.delay(str(request_id))
    for change_id in unsent.change_confirmations:
        send_email_change_confirmation.delay(str(change_id))
    for change_id in unsent.change_notices:
        send_email_change_notice.delay(str(change_id))
    queued = len(unsent.confirmations) + len(unsent.change_confirmations) + len(unsent.change_notices)
    if queued:
        logger.warning("queued %s transactional emails that had not gone out", queued)
    return queued


@shared_task(name="subscribers.expire_confirmations")
def expire_confirmations() -> int:
    return services.confirmations_expire()


@shared_task(name="subscribers.count_audience")
def count_audience(purpose_id: int) -> None:
    audience_counts.breakdown_count(purpose_id=purpose_id)

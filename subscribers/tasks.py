"""Celery entry points of the subscribers app: ids in, one call out."""

from __future__ import annotations

from smtplib import SMTPException
from typing import Any

from anymail.exceptions import AnymailAPIError
from celery import shared_task

from subscribers import emails, services

# Mail servers and providers fail transiently; a confirmation delayed is better than lost.
SEND_ERRORS = (SMTPException, OSError, AnymailAPIError)
# Every transactional email: retried with backoff for up to about a day.
EMAIL_RETRY: dict[str, Any] = {
    "autoretry_for": SEND_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 3600,
    "max_retries": 8,
}


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


@shared_task(name="subscribers.expire_confirmations")
def expire_confirmations() -> int:
    return services.confirmations_expire()

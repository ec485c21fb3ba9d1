"""Transactional emails of the subscribers app (double opt-in and its replies).

Each function reads what it needs, sends outside any transaction, then records the send.
Templates live at ``templates/subscribers/email/<name>_{subject.txt,body.txt,body.html}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from subscribers import selectors, services, tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, Subscriber

logger = logging.getLogger(__name__)


def build_email(name: str, *, to: str, context: dict[str, Any]) -> EmailMultiAlternatives:
    context = {
        "organisation_name": settings.ORGANISATION_NAME,
        "organisation_address": settings.ORGANISATION_ADDRESS,
        "site_url": settings.SITE_URL,
        **context,
    }
    prefix = f"subscribers/email/{name}"
    # A subject is one line: a newline there would start a new header.
    subject = " ".join(render_to_string(f"{prefix}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{prefix}_body.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"Auto-Submitted": "auto-generated"},
    )
    message.attach_alternative(render_to_string(f"{prefix}_body.html", context), "text/html")
    return message


def site_link(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def send_confirmation(*, request_id: str) -> bool:
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
        context={"name": subscriber.name, "consents": selectors.active_consents(subscriber=subscriber)},
    )
    message.send()
    logger.info("already-subscribed notice sent to subscriber %s", subscriber.pk)
    return True

"""Public pages: signup, "check your inbox" and the double opt-in confirmation."""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import get_language
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from subscribers import selectors, services, tokens
from subscribers.emails import contact_email
from subscribers.forms import ADDRESS_FIELDS, SignupForm
from subscribers.http import embeddable
from subscribers.models import ConfirmationRequest, ConsentEvent
from subscribers.selectors import SignupOffer
from subscribers.views.common import evidence_from as _evidence

logger = logging.getLogger(__name__)


def _signup_rate(group: str, request: HttpRequest) -> str:
    return settings.SIGNUP_RATE_LIMIT


@embeddable
@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False)
def signup(request: HttpRequest) -> HttpResponse:
    offers = selectors.signup_offers(language=get_language())
    if request.method != "POST":
        return _blank_page(request, offers)
    if getattr(request, "limited", False):
        logger.info("signup rate limit reached")
        return render(request, "subscribers/rate_limited.html", status=429)
    form = SignupForm(request.POST, offers=offers)
    if form.is_bot:
        logger.info("signup honeypot filled; nothing stored")
        return redirect("subscribers:check_inbox")
    if form.is_valid():
        services.subscriber_sign_up(
            email=form.cleaned_data["email"],
            name=form.cleaned_data.get("name", "").strip(),
            choices=form.choices(),
            postal_address=form.postal_address(),
            evidence=_evidence(request, ConsentEvent.Source.SIGNUP_PAGE, form.submitted()),
            language=get_language() or settings.LANGUAGE_CODE,
        )
        # The same answer whether the address is new, pending or already subscribed.
        return redirect("subscribers:check_inbox")
    return render(request, "subscribers/signup.html", {"form": form, "offers": offers}, status=400)


# The blank signup page is the same for every visitor but for its CSRF token, and rendering
# its form (crispy, a template per field) is most of a request's CPU. It is rendered once per
# process for each wording on offer, with a placeholder where the token goes; each visitor
# gets their own token put in. A new text version or an edited purpose changes the key.
_CSRF_PLACEHOLDER = "csrf" + secrets.token_hex(30)
_blank_pages: dict[tuple[Any, ...], str] = {}
_BLANK_PAGES_KEPT = 32


@receiver(setting_changed)
def _forget_blank_pages(**kwargs: Any) -> None:
    _blank_pages.clear()  # tests change the organisation's name, static files …


def _blank_page(request: HttpRequest, offers: list[SignupOffer]) -> HttpResponse:
    key = (
        get_language(),
        tuple(
            (
                o.text.pk,
                o.purpose.pk,
                o.purpose.name,
                o.purpose.description,
                o.purpose.kind,
                *o.purpose.channels,
            )
            for o in offers
        ),
    )
    page = _blank_pages.get(key)
    if page is None:
        context = {"form": SignupForm(offers=offers), "offers": offers, "csrf_token": _CSRF_PLACEHOLDER}
        page = render_to_string("subscribers/signup.html", context, request=request)
        if len(_blank_pages) >= _BLANK_PAGES_KEPT:
            _blank_pages.clear()
        _blank_pages[key] = page
    # get_token() also has the middleware set the CSRF cookie, as {% csrf_token %} would.
    return HttpResponse(page.replace(_CSRF_PLACEHOLDER, get_token(request)))


@embeddable
def check_inbox(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/check_inbox.html")


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows one button; only the POST confirms, so a mail scanner's fetch does nothing."""
    request_id = tokens.confirmation_request_id(token)
    if request_id is None:
        return render(request, "subscribers/link_problem.html", {"reason": "invalid"}, status=400)
    if request.method == "POST":
        try:
            confirmed = services.subscription_confirm(
                request_id=request_id, evidence=_evidence(request, ConsentEvent.Source.CONFIRMATION_LINK)
            )
        except services.ConfirmationError as exc:
            return _link_problem(request, exc.reason)
        context = {
            "items": _requested(request_id),
            "suppression": selectors.suppression_in_force(subscriber=confirmed.subscriber),
            "contact_email": contact_email(),
        }
        return render(request, "subscribers/confirmed.html", context)
    pending = ConfirmationRequest.objects.filter(pk=request_id).first()
    if pending is None:
        return _link_problem(request, "unknown")
    if not pending.is_open:
        return _link_problem(request, "already_confirmed" if pending.confirmed_at else "expired")
    # Confirming also saves what was typed at signup: the person sees it before the click.
    typed = pending.profile
    address = [typed[field] for field in ADDRESS_FIELDS if typed.get(field)]  # jsonb keeps no order
    context = {
        "items": _requested(request_id),
        "token": token,
        "name": typed.get("name", ""),
        "address": address,
    }
    return render(request, "subscribers/confirm.html", context)


def _requested(request_id: uuid.UUID) -> list[ConsentEvent]:
    return list(
        ConsentEvent.objects.filter(request_id=request_id, kind=ConsentEvent.Kind.REQUESTED)
        .select_related("purpose", "consent_text")
        .order_by("seq")
    )


def _link_problem(request: HttpRequest, reason: str) -> HttpResponse:
    status = {"unknown": 404, "expired": 410, "already_confirmed": 200}.get(reason, 400)
    return render(request, "subscribers/link_problem.html", {"reason": reason}, status=status)

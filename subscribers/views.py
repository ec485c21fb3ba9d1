"""Public pages: signup, "check your inbox", the double opt-in confirmation, unsubscribe."""

from __future__ import annotations

import logging
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language, gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods
from django_ratelimit.decorators import ratelimit

from subscribers import links, selectors, services, tokens
from subscribers.forms import SignupForm
from subscribers.http import client_ip, user_agent
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConfirmationRequest, ConsentEvent, ConsentState, Purpose

logger = logging.getLogger(__name__)


def _signup_rate(group: str, request: HttpRequest) -> str:
    return settings.SIGNUP_RATE_LIMIT


def _evidence(request: HttpRequest, source: str, submitted: dict | None = None) -> Evidence:
    return Evidence(
        source=source,
        actor=ConsentEvent.Actor.SUBSCRIBER,
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        page_url=request.build_absolute_uri()[:2000],
        submitted=submitted or {},
    )


@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=_signup_rate, method="POST", block=False)
def signup(request: HttpRequest) -> HttpResponse:
    offers = selectors.signup_offers(language=get_language())
    form = SignupForm(request.POST or None, offers=offers)
    if request.method == "POST":
        if getattr(request, "limited", False):
            logger.info("signup rate limit reached")
            return render(request, "subscribers/rate_limited.html", status=429)
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
    status = 400 if form.errors else 200
    return render(request, "subscribers/signup.html", {"form": form, "offers": offers}, status=status)


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
            services.subscription_confirm(
                request_id=request_id, evidence=_evidence(request, ConsentEvent.Source.CONFIRMATION_LINK)
            )
        except services.ConfirmationError as exc:
            return _link_problem(request, exc.reason)
        return render(request, "subscribers/confirmed.html", {"items": _requested(request_id)})
    pending = ConfirmationRequest.objects.filter(pk=request_id).first()
    if pending is None:
        return _link_problem(request, "unknown")
    if not pending.is_open:
        return _link_problem(request, "already_confirmed" if pending.confirmed_at else "expired")
    return render(request, "subscribers/confirm.html", {"items": _requested(request_id), "token": token})


def _requested(request_id: uuid.UUID) -> list[ConsentEvent]:
    return list(
        ConsentEvent.objects.filter(request_id=request_id, kind=ConsentEvent.Kind.REQUESTED)
        .select_related("purpose", "consent_text")
        .order_by("seq")
    )


def _link_problem(request: HttpRequest, reason: str) -> HttpResponse:
    status = {"unknown": 404, "expired": 410, "already_confirmed": 200}.get(reason, 400)
    return render(request, "subscribers/link_problem.html", {"reason": reason}, status=status)


# --- Unsubscribe and preferences, from the signed links in campaign emails -------------

UNSUBSCRIBE_REASON_MAX = 500
_WITHDRAWABLE = (ConsentState.Status.ACTIVE, ConsentState.Status.PENDING)


# RFC 8058: mail clients POST "List-Unsubscribe=One-Click" with no cookies and no CSRF
# token; the signed, scoped token in the URL is the only credential.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows one button (a link scanner's fetch changes nothing); POST withdraws."""
    claims = links.read("unsubscribe", token)
    subscriber = selectors.linked_subscriber(claims)
    purpose = None
    if claims and claims.purpose_id and subscriber:
        purpose = Purpose.objects.filter(pk=claims.purpose_id).first()
    if subscriber is None or purpose is None:
        return _bad_link(request)
    if request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click":
        # RFC 8058 §3.2: act at once and answer without asking anything more.
        services.consent_withdraw(
            subscriber=subscriber,
            purpose=purpose,
            channel=Channel.EMAIL,
            evidence=_evidence(request, ConsentEvent.Source.UNSUBSCRIBE_LINK, {"one_click": True}),
        )
        message = gettext("You are unsubscribed: you won't get %(purpose)s emails any more.")
        return HttpResponse(message % {"purpose": purpose.name}, content_type="text/plain; charset=utf-8")
    if request.method == "POST" and request.POST.get("confirm") == "1":
        reason = request.POST.get("reason", "").strip()[:UNSUBSCRIBE_REASON_MAX]
        everything = bool(request.POST.get("everything"))
        submitted: dict = {"confirm": True, "everything": everything}
        if reason:
            submitted["reason"] = reason
        evidence = _evidence(request, ConsentEvent.Source.UNSUBSCRIBE_LINK, submitted)
        if everything:
            withdrawn = services.consents_withdraw_all(subscriber=subscriber, evidence=evidence)
        else:
            event = services.consent_withdraw(
                subscriber=subscriber, purpose=purpose, channel=Channel.EMAIL, evidence=evidence
            )
            withdrawn = [event] if event else []
        return render(
            request,
            "subscribers/unsubscribed.html",
            {"purpose": purpose, "withdrawn": withdrawn, "everything": everything},
        )
    states = list(ConsentState.objects.filter(subscriber=subscriber, status__in=_WITHDRAWABLE))
    return render(
        request,
        "subscribers/unsubscribe.html",
        {
            "purpose": purpose,
            "token": token,
            "subscribed": any(s.purpose_id == purpose.pk and s.channel == Channel.EMAIL for s in states),
            "has_others": any(s.purpose_id != purpose.pk or s.channel != Channel.EMAIL for s in states),
            "reason_max": UNSUBSCRIBE_REASON_MAX,
            "preferences_url": reverse(
                "subscribers:preferences", args=[selectors.preferences_token(subscriber)]
            ),
        },
    )


@never_cache
@require_GET
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    """What this subscriber receives now, read-only, with a way to stop each (issue 4 builds the rest)."""
    claims = links.read("preferences", token)
    subscriber = selectors.linked_subscriber(claims)
    if subscriber is None:
        return _bad_link(request)
    consents = [
        {
            "state": state,
            "unsubscribe_url": reverse(
                "subscribers:unsubscribe", args=[links.make("unsubscribe", subscriber.pk, state.purpose_id)]
            )
            if state.channel == Channel.EMAIL and state.status in _WITHDRAWABLE
            else "",
        }
        for state in ConsentState.objects.filter(subscriber=subscriber).select_related("purpose")
    ]
    return render(request, "subscribers/preferences.html", {"subscriber": subscriber, "consents": consents})


def _bad_link(request: HttpRequest) -> HttpResponse:
    contact = settings.UNSUBSCRIBE_MAILTO or settings.SENDER_EMAIL
    return render(
        request,
        "subscribers/link_problem.html",
        {"reason": "manage_link_invalid", "contact_email": contact},
        status=400,
    )

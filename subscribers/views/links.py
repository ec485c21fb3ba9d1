"""Pages behind the signed links in campaign emails: unsubscribe and the preference centre."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from subscribers import links, selectors, services
from subscribers.models import Channel, ConsentEvent, ConsentState, Purpose
from subscribers.views.common import bad_link, evidence_from

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
        return bad_link(request)
    if request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click":
        # RFC 8058 §3.2: act at once and answer without asking anything more.
        services.consent_withdraw(
            subscriber=subscriber,
            purpose=purpose,
            channel=Channel.EMAIL,
            evidence=evidence_from(request, ConsentEvent.Source.UNSUBSCRIBE_LINK, {"one_click": True}),
        )
        message = gettext("You are unsubscribed: you won't get %(purpose)s emails any more.")
        return HttpResponse(message % {"purpose": purpose.name}, content_type="text/plain; charset=utf-8")
    if request.method == "POST" and request.POST.get("confirm") == "1":
        reason = request.POST.get("reason", "").strip()[:UNSUBSCRIBE_REASON_MAX]
        everything = bool(request.POST.get("everything"))
        submitted: dict = {"confirm": True, "everything": everything}
        if reason:
            submitted["reason"] = reason
        evidence = evidence_from(request, ConsentEvent.Source.UNSUBSCRIBE_LINK, submitted)
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
        return bad_link(request)
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

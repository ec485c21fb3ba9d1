"""The page behind the unsubscribe link in campaign emails: one-click, one button, and undo.

The preference centre is in ``views/preferences.py``.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from subscribers import links, selectors, services
from subscribers.models import Channel, ConsentEvent, ConsentState, Purpose
from subscribers.views.common import bad_link, evidence_from, switch_name

UNSUBSCRIBE_REASON_MAX = 500
MAX_UNDO_IDS = 20
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
    preferences_url = reverse("subscribers:preferences", args=[selectors.preferences_token(subscriber)])
    if request.method == "POST" and request.POST.get("undo") == "1":
        # The unsubscribed page's undo button: the token in the URL is the credential, as above.
        ids = [
            int(v)
            for v in request.POST.getlist("withdrawal")[:MAX_UNDO_IDS]
            if v.isascii() and v.isdigit() and len(v) < 19  # fits a 64-bit id
        ]
        outcome = services.unsubscribe_undo(
            subscriber=subscriber,
            withdrawal_ids=ids,
            evidence=evidence_from(
                request, ConsentEvent.Source.UNSUBSCRIBE_LINK, {"undo": True, "withdrawals": ids}
            ),
        )
        if outcome.reworded:
            return _read_the_new_wording(request, outcome, preferences_url)
        return render(
            request,
            "subscribers/resubscribed.html",
            {"restored": outcome.restored, "preferences_url": preferences_url},
            status=200 if outcome.restored else 400,
        )
    if request.method == "POST" and request.POST.get("confirm") == "1":
        # Free text kept in the evidence: PostgreSQL cannot store a NUL, so none is kept.
        reason = request.POST.get("reason", "").replace("\x00", "").strip()[:UNSUBSCRIBE_REASON_MAX]
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
            {
                "purpose": purpose,
                "withdrawn": withdrawn,
                "everything": everything,
                "token": token,
                "preferences_url": preferences_url,
            },
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
            "preferences_url": preferences_url,
        },
    )


def _read_the_new_wording(
    request: HttpRequest, outcome: services.UndoOutcome, preferences_url: str
) -> HttpResponse:
    """Some wording changed since the person agreed to it: this page shows none, so send them
    to the preference centre, where the new wording is, to read it and switch back on there."""
    for state in outcome.restored:
        messages.success(
            request, gettext("%(what)s is on again.") % {"what": switch_name(state.purpose, state.channel)}
        )
    purposes = list({s.purpose.pk: s.purpose for s in outcome.reworded}.values())
    for purpose in purposes:
        messages.info(
            request,
            gettext(
                "The wording for %(purpose)s changed since you agreed to it, so we haven't switched "
                "it back on. Please read it and switch it on again if you still want it."
            )
            % {"purpose": purpose.name},
        )
    return redirect(f"{preferences_url}#purpose-{purposes[0].pk}")

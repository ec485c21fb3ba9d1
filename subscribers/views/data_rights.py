"""Download my data, and delete me: reached from the preference centre's link.

The download holds personal data and a campaign email may have been forwarded, so it
needs a preferences link emailed within ``FRESH_LINK_HOURS``; an older (still valid) link
gets a page with one button that emails a fresh one to the address on file. Deleting
needs only a valid link, like unsubscribing from everything: GET shows one button, and
only the POST erases, so a mail scanner's fetch never does.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from subscribers import exports, links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent
from subscribers.views.common import bad_link
from subscribers.views.manage import mail_manage_link


@never_cache
@require_http_methods(["GET", "POST"])
def my_data(request: HttpRequest, token: str) -> HttpResponse:
    """GET with a fresh link: the JSON download. POST (the stale-link page's button): a fresh link."""
    claims = links.read("preferences", token)
    subscriber = selectors.linked_subscriber(claims)
    if claims is None or subscriber is None:
        return bad_link(request)
    if request.method == "POST":
        mail_manage_link(subscriber)
        return redirect("subscribers:manage_sent")
    if not claims.is_fresh(timedelta(hours=settings.FRESH_LINK_HOURS)):
        return render(
            request,
            "subscribers/fresh_link_needed.html",
            {"token": token, "hours": settings.FRESH_LINK_HOURS},
        )
    data = exports.subscriber_export(subscriber=subscriber)
    response = JsonResponse(data, json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = 'attachment; filename="my-data.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def delete_me(request: HttpRequest, token: str) -> HttpResponse:
    subscriber = selectors.linked_subscriber(links.read("preferences", token))
    if subscriber is None:
        return bad_link(request)
    if request.method == "POST":
        # No IP, user agent or page URL: this is the one evidence record the erasure keeps.
        evidence = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE, actor=ConsentEvent.Actor.SUBSCRIBER)
        # A second click racing the first finds nothing left to erase: the data is gone either way.
        with contextlib.suppress(services.ErasureError):
            services.subscriber_erase(subscriber=subscriber, evidence=evidence)
        return redirect("subscribers:erased")
    return render(request, "subscribers/delete_me.html", {"token": token, "subscriber": subscriber})


def erased(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/erased.html")

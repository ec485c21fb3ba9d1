"""What every public view shares: evidence from a request, and the friendly bad-link page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from subscribers import links
from subscribers.emails import contact_email
from subscribers.http import client_ip, user_agent
from subscribers.ledger import Evidence
from subscribers.manage_forms import ManageLinkForm
from subscribers.models import ConsentEvent


def evidence_from(request: HttpRequest, source: str, submitted: dict | None = None) -> Evidence:
    return Evidence(
        source=source,
        actor=ConsentEvent.Actor.SUBSCRIBER,
        ip_address=client_ip(request),
        user_agent=user_agent(request),
        page_url=links.page_without_token(request.build_absolute_uri())[:2000],
        submitted=submitted or {},
    )


def bad_link(request: HttpRequest) -> HttpResponse:
    """A forged, altered, expired or revoked link: say so kindly and offer a fresh one."""
    return render(
        request,
        "subscribers/link_problem.html",
        {"reason": "manage_link_invalid", "contact_email": contact_email(), "manage_form": ManageLinkForm()},
        status=400,
    )

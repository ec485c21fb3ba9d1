"""What every public view shares: evidence from a request, a switch's name, and the friendly
bad-link page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy

from subscribers import links
from subscribers.emails import contact_email
from subscribers.http import client_ip, user_agent
from subscribers.ledger import Evidence
from subscribers.manage_forms import ManageLinkForm
from subscribers.models import Channel, ConsentEvent, Purpose

CHANNEL_NAMES = {Channel.EMAIL: gettext_lazy("by email"), Channel.POSTAL: gettext_lazy("by post")}


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


def switch_name(purpose: Purpose, channel: Channel | str) -> str:
    """A preference-centre switch in words: "Newsletter by email"."""
    # Tracking is about the emails, not a way of getting them: no "by email".
    return purpose.name if purpose.is_tracking else f"{purpose.name} {CHANNEL_NAMES[Channel(channel)]}"

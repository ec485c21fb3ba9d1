"""'Manage my subscription': type your address, get a fresh preferences link by email.

The page answers the same whether or not we know the address, so it cannot be used to
find out who subscribes: it does the same work for every well-formed address (it queues one
task with the address's keyed hash; the worker looks the address up), so not even its
timing tells. Each IP address may ask ``MANAGE_LINK_RATE_LIMIT`` times, and
each address gets at most one email per ``MANAGE_LINK_INTERVAL_MINUTES``, whoever asks,
so the form cannot be turned into a way of flooding someone's inbox.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_ratelimit.decorators import ratelimit

from subscribers import services, tasks
from subscribers.manage_forms import ManageLinkForm
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)


def _manage_rate(group: str, request: HttpRequest) -> str:
    return settings.MANAGE_LINK_RATE_LIMIT


def mail_manage_link(subscriber: Subscriber) -> bool:
    """Queue the fresh-link email to a subscriber we already hold (a stale link's owner)."""
    return tasks.queue_manage_link(subscriber)


@never_cache
@require_http_methods(["GET", "POST"])
@ratelimit(key="ip", rate=_manage_rate, method="POST", block=False)
def manage(request: HttpRequest) -> HttpResponse:
    form = ManageLinkForm(request.POST or None)
    if request.method == "POST":
        if getattr(request, "limited", False):
            logger.info("manage-link rate limit reached")
            return render(request, "subscribers/manage.html", {"form": form, "limited": True}, status=429)
        if form.is_bot:
            logger.info("manage-link honeypot filled; nothing sent")
            return redirect("subscribers:manage_sent")
        if form.is_valid():
            # Queued at once: nothing was written that the task must see. With the broker down
            # the visitor gets the same page, and can ask again later.
            tasks.queue_or_log(
                tasks.send_manage_link_for_address, services.address_hash(form.cleaned_data["email"])
            )
            # The same answer, after the same work, for a known, unknown or erased address.
            return redirect("subscribers:manage_sent")
    return render(request, "subscribers/manage.html", {"form": form}, status=400 if form.errors else 200)


def manage_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "subscribers/manage_sent.html")

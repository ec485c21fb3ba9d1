"""What a request tells us about the visitor, for the consent evidence and rate limits."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

MAX_USER_AGENT = 1000


def client_ip(request: HttpRequest) -> str | None:
    """The visitor's IP: REMOTE_ADDR, or the address added by the last trusted proxy."""
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def client_ip_for_ratelimit(request: HttpRequest) -> str:
    # Requests without a usable address share one bucket rather than escaping the limit.
    return client_ip(request) or "0.0.0.0"  # noqa: S104


def user_agent(request: HttpRequest) -> str:
    # PostgreSQL text cannot hold NUL; a client may send one anyway.
    return request.META.get("HTTP_USER_AGENT", "").replace("\x00", "")[:MAX_USER_AGENT]


def embeddable(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Let the sites in ``SIGNUP_FRAME_ANCESTORS`` (and only them) show this page in a frame."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        origins = settings.SIGNUP_FRAME_ANCESTORS
        if origins:
            response.xframe_options_exempt = True
            response._csp_replace = {"frame-ancestors": ["'self'", *origins]}  # type: ignore[attr-defined]
        return response

    return wrapped

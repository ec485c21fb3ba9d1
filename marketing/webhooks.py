"""The providers' tracking webhooks under ``/anymail/``: anymail's views, refusing clearly.

Every tracking view anymail ships (``anymail.urls``: Mailgun, SendGrid, Postmark, Amazon
SES, Brevo, Mailjet, Mandrill, Postal, Resend, SparkPost …) is mounted at its usual path
and name (``anymail:<esp>_tracking_webhook``); inbound-mail views are not, as nothing
here receives mail. Each view is anymail's own with ``post`` replaced, so that a request
is refused with a plain-text reason and nothing is stored:

- 503 while ``ANYMAIL_WEBHOOK_SECRET`` is unset: an open webhook would let anyone forge
  complaints and unsubscribes. (anymail itself only warns.)
- 401 with a Basic challenge for missing or wrong credentials (Amazon SNS sends its
  credentials only after a challenge).
- 403 for a failed provider signature check (Mailgun's ``WEBHOOK_SIGNING_KEY``, SendGrid's
  ``TRACKING_WEBHOOK_VERIFICATION_KEY``, Mandrill's, Postal's, Resend's …).
- 400 for a body that does not parse, or parses into nothing we could match (no message
  id and no recipient). anymail lets most of these surface as a 500, which providers
  retry for days.

Accepted events go to anymail's ``tracking`` signal as usual (``marketing.receivers``).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailAPIError, AnymailConfigurationError, AnymailWebhookValidationFailure
from anymail.utils import get_request_basic_auth
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils.crypto import constant_time_compare

logger = logging.getLogger(__name__)

# What anymail's parsers raise on a body of the wrong shape (RecursionError: JSON nested
# thousands deep, which the json module refuses that way).
MALFORMED = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    IndexError,
    OverflowError,
    AssertionError,
    RecursionError,
)


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


class RefusingWebhookMixin:
    """Replaces ``AnymailCoreWebhookView.post``: validate, parse, then send each event."""

    basic_auth: list[str]
    esp_name: str
    signal: Any

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.basic_auth:
            return _plain(503, "Provider webhooks are off until ANYMAIL_WEBHOOK_SECRET is set.")
        given = get_request_basic_auth(request) or ""
        # Every pair is compared (no early exit), so the time taken tells nothing of which.
        if not any([constant_time_compare(given, allowed) for allowed in self.basic_auth]):
            response = _plain(401, f"Missing or wrong credentials for the {self.esp_name} webhook.")
            response["WWW-Authenticate"] = 'Basic realm="provider webhooks"'
            return response
        if _says_json(request) and not _parses_as_json(request):
            return self._malformed("the body is not JSON")
        try:
            self.run_validators(request)  # type: ignore[attr-defined]
        except AnymailWebhookValidationFailure as exc:
            logger.warning("%s webhook refused: %s", self.esp_name, exc)
            return _plain(403, f"The {self.esp_name} webhook signature was not accepted.")
        except (AnymailAPIError, *MALFORMED) as exc:
            return self._malformed(type(exc).__name__)
        try:
            events = list(self.parse_events(request))  # type: ignore[attr-defined]
        except MALFORMED as exc:
            return self._malformed(type(exc).__name__)
        if events and not any(e.message_id or e.recipient for e in events):
            return self._malformed("no event names a message or a recipient")
        for event in events:
            self.signal.send(sender=type(self), event=event, esp_name=self.esp_name)
        return HttpResponse()

    def _malformed(self, why: str) -> HttpResponse:
        logger.warning("%s webhook refused: malformed payload (%s)", self.esp_name, why)
        return _plain(400, f"Malformed {self.esp_name} webhook payload ({why}): nothing was stored.")


def _says_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def _parses_as_json(request: HttpRequest) -> bool:
    try:
        json.loads(request.body.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return False
    return True


def _is_tracking(pattern: URLPattern) -> bool:
    # Mandrill's one endpoint carries both kinds; the others are split.
    name = pattern.name or ""
    return name.endswith("_tracking_webhook") or name == "mandrill_webhook"


def _refusing(view_class: type) -> type:
    return type(f"Refusing{view_class.__name__}", (RefusingWebhookMixin, view_class), {})


def _configured_or_503(view_class: type) -> Callable[..., HttpResponse]:
    """anymail reads a provider's signing key when the view is built, per request: a missing
    key must be a clear 503 to whoever calls, not a 500 with a traceback."""
    view = _refusing(view_class).as_view()  # type: ignore[attr-defined]

    @functools.wraps(view)  # keeps csrf_exempt: providers send no CSRF token
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except AnymailConfigurationError as exc:
            logger.error("provider webhook not configured: %s", exc)
            return _plain(503, "This webhook is not set up yet: its provider's signing key is missing.")

    return guarded


app_name = "anymail"
urlpatterns = [
    path(str(p.pattern), _configured_or_503(p.callback.view_class), name=p.name)  # type: ignore[attr-defined]
    for p in anymail_urls.urlpatterns
    if isinstance(p, URLPattern) and _is_tracking(p)
]

"""What sending a batch came to, shared by both ways of sending (``one_by_one``, ``batching``).

Each sender fills two dicts that ``dispatch`` records in one transaction:

- ``Outcomes``: delivery id -> (``Delivery.Status``, provider message id, error), for every
  delivery whose fate is settled (sent, refused, no longer eligible);
- ``Retries``: delivery id -> (attempts so far, seconds to wait), for temporary failures.

The rest is how a failure is read: permanent or worth retrying, and the words kept for it.
Plain Python: no Celery, no request. Settings are read when called, never at import.
"""

from __future__ import annotations

import smtplib

from django.conf import settings

from marketing import throttle

Outcomes = dict[int, tuple[str, str, str]]
Retries = dict[int, tuple[int, float]]


def retry_delay(exc: Exception, attempts: int) -> float | None:
    """Seconds to wait before retrying, or None when the failure is permanent."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, smtplib.SMTPResponseException) and 500 <= exc.smtp_code < 600:
        return None
    if status is not None and 400 <= status < 500 and status != 429:
        return None
    backoff = min(settings.DISPATCH_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), 3600.0)
    if status == 429:
        retry_after = exc.response.headers.get("Retry-After", "")  # type: ignore[attr-defined]
        wait = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else backoff
        throttle.hold(wait)
        return wait
    return backoff


def refusal(exc: Exception) -> str:
    """The receiving side's own words for a refused recipient, which anymail's message omits."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        reasons = [
            f"{code} {text.decode(errors='replace') if isinstance(text, bytes) else text}"
            for code, text in exc.recipients.values()
        ]
        return short(exc) + ": " + "; ".join(reasons)
    response = getattr(exc, "response", None)
    if response is None:
        return short(exc)
    try:
        body = response.json()
        detail = body.get("Message") or body.get("message") if isinstance(body, dict) else str(body)
    except ValueError:
        detail = response.text
    return f"{short(exc)}: {str(detail)[:300]}"


def short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]

"""Audiences, waits and checks shared by the campaign end-to-end tests."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client
from django.utils import dateformat, timezone

from config.celery import app as celery_app
from marketing import services as marketing
from marketing import tasks
from marketing.models import Campaign, Delivery
from subscribers import services
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConsentEvent,
    ConsentState,
    ConsentText,
    Purpose,
    Subscriber,
    Suppression,
)

WEB = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130")
PREFERENCES = Evidence(
    source=ConsentEvent.Source.PREFERENCE_CENTRE, ip_address="198.51.100.9", user_agent="Firefox/131"
)
# Links in the emails must be https (RFC 8058 requires it for one-click unsubscribe).
SITE_URL = "https://news.example.com"
BODY = (
    "Hello {{ first_name }}!\n\nThis month: **three new recipes** and a [tour](https://example.com/tour).\n"
)
ANGLE_BRACKETS = re.compile(r"<([^>]+)>")


@dataclass
class Audience:
    purpose: Purpose
    eligible: list[Subscriber]
    pending: Subscriber
    withdrawn: Subscriber
    suppressed: Subscriber

    @property
    def eligible_emails(self) -> set[str]:
        return {s.email or "" for s in self.eligible}

    @property
    def excluded_emails(self) -> set[str]:
        return {s.email or "" for s in (self.pending, self.withdrawn, self.suppressed)}


def first_name(number: int) -> str:
    # One word, so whatever rule picks the first name from ``name`` picks all of it.
    return f"Reader{number:02d}"


def sign_up(email: str, text: ConsentText, *, name: str = "", confirm: bool = True) -> Subscriber:
    outcome = services.subscriber_sign_up(
        email=email,
        name=name,
        choices=[services.ConsentChoice(consent_text=text, channel=Channel.EMAIL)],
        evidence=WEB,
    )
    if confirm and outcome.request:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=WEB)
    return Subscriber.objects.get(pk=outcome.subscriber.pk)


def make_audience(consent_texts: dict[str, ConsentText], *, eligible: int) -> Audience:
    """``eligible`` confirmed newsletter readers, plus one pending, one withdrawn and one suppressed.

    The signups queue double opt-in emails on the broker; they are purged so that a worker
    started afterwards sends nothing but the campaign.
    """
    text = consent_texts["newsletter"]
    readers = [sign_up(f"reader{n:02d}@example.org", text, name=first_name(n)) for n in range(eligible)]
    pending = sign_up("pending@example.org", text, name="Pending", confirm=False)
    withdrawn = sign_up("withdrawn@example.org", text, name="Withdrawn")
    withdraw(withdrawn, text.purpose)
    suppressed = sign_up("bounced@example.org", text, name="Bounced")
    Suppression.objects.create(email_hash=suppressed.email_hash, reason=Suppression.Reason.HARD_BOUNCE)
    celery_app.control.purge()
    return Audience(text.purpose, readers, pending, withdrawn, suppressed)


def withdraw(subscriber: Subscriber, purpose: Purpose) -> None:
    services.consent_withdraw(
        subscriber=subscriber, purpose=purpose, channel=Channel.EMAIL, evidence=PREFERENCES
    )


def worker_env(email_url: str, **extra: str | int | float) -> dict[str, str]:
    """Environment for a dispatching worker: where to send, and the settings the checks rely on."""
    return {
        "EMAIL_URL": email_url,
        "SITE_URL": SITE_URL,
        "ORGANISATION_NAME": settings.ORGANISATION_NAME,
        "ORGANISATION_ADDRESS": settings.ORGANISATION_ADDRESS,
        "SEND_RATE_PER_SECOND": "0",
        **{key: str(value) for key, value in extra.items()},
    }


def start_campaign(audience: Audience, *, subject: str = "November news") -> Campaign:
    campaign = marketing.campaign_create(
        actor=None, name=subject, purpose=audience.purpose, subject=subject, body=BODY
    )
    return marketing.campaign_send(campaign_id=campaign.pk, actor=None)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, log: Callable[[], str]) -> None:
    """Poll ``condition`` every 0.1 s; fail with ``what`` and the worker log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            message = f"timed out after {timeout:.0f} s waiting for {what}"
            raise AssertionError(f"{message}\n--- worker log ---\n{log()}")
        time.sleep(0.1)


def wait_until_sent(
    campaign: Campaign, *, log: Callable[[], str], timeout: float = 20.0, sweep: bool = False
) -> Campaign:
    """Wait for the campaign to finish. With ``sweep``, act as the scheduler would, once a second:
    ``keep_campaigns_moving`` queues a runner for retries that came due and abandoned batches."""
    last_sweep = 0.0

    def finished() -> bool:
        nonlocal last_sweep
        campaign.refresh_from_db()
        if campaign.status != Campaign.Status.SENDING:
            return True
        if sweep and time.monotonic() - last_sweep >= 1.0:
            last_sweep = time.monotonic()
            tasks.keep_campaigns_moving()
        return False

    wait_until(finished, timeout=timeout, what=f"campaign {campaign.pk} to finish sending", log=log)
    assert campaign.status == Campaign.Status.SENT, (campaign.status, campaign.paused_reason)
    return campaign


def count(campaign: Campaign, status: str) -> int:
    return Delivery.objects.filter(campaign=campaign, status=status).count()


def statuses(campaign: Campaign) -> dict[str, str]:
    """Delivery status by recipient address."""
    rows = Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "status")
    return {email or "": status for email, status in rows}


# --- What a recipient gets --------------------------------------------------------------


def unsubscribe_urls(header: str | None) -> tuple[str, str]:
    """The https URL and the mailto of a ``List-Unsubscribe`` header (RFC 2369)."""
    assert header, "no List-Unsubscribe header"
    urls = ANGLE_BRACKETS.findall(header)
    https = [u for u in urls if u.startswith("https://")]
    mailto = [u for u in urls if u.startswith("mailto:")]
    assert len(https) == 1 and len(mailto) == 1, header
    return https[0], mailto[0]


def check_email(
    *,
    subscriber: Subscriber,
    audience: Audience,
    subject: str,
    text: str,
    html: str,
    header: Callable[[str], str | None],
) -> str:
    """Check one received email for ``subscriber``; returns its one-click unsubscribe URL."""
    assert subject == "November news"
    # The personalised greeting, in both parts.
    assert f"Hello {subscriber.name}!" in text
    assert f"Hello {subscriber.name}!" in html
    assert "<strong>three new recipes</strong>" in html
    assert 'href="https://example.com/tour"' in html
    # The footer: who sends it, from where, and why this person gets it since when.
    state = ConsentState.objects.get(subscriber=subscriber, purpose=audience.purpose, channel=Channel.EMAIL)
    assert state.confirmed_at is not None
    consented_on = dateformat.format(timezone.localtime(state.confirmed_at), "j F Y")
    for part in (text, html):
        assert settings.ORGANISATION_NAME in part
        assert settings.ORGANISATION_ADDRESS in part
        assert f"you agreed to {audience.purpose.name} emails on {consented_on}" in " ".join(part.split())
    # RFC 2369 and RFC 8058 headers.
    https_url, mailto = unsubscribe_urls(header("List-Unsubscribe"))
    assert https_url.startswith(f"{SITE_URL}/")
    assert header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
    list_id = header("List-Id")
    assert list_id and ANGLE_BRACKETS.search(list_id), list_id
    assert mailto.startswith("mailto:")
    # The footer links to the same personal unsubscribe page.
    assert https_url in text
    assert https_url in html
    return https_url


def check_one_click_withdraws(url: str, subscriber: Subscriber, purpose: Purpose) -> None:
    """POST ``List-Unsubscribe=One-Click`` as a mailbox provider does: no cookies, no CSRF token."""
    state = ConsentState.objects.get(subscriber=subscriber, purpose=purpose, channel=Channel.EMAIL)
    assert state.status == ConsentState.Status.ACTIVE
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        urlsplit(url).path,  # the host is SITE_URL's; the test client serves this process
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code in (200, 202, 204), (response.status_code, response.content[:500])
    state.refresh_from_db()
    assert state.status == ConsentState.Status.WITHDRAWN
    last = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq").first()
    assert last is not None
    assert (last.kind, last.purpose_id) == (ConsentEvent.Kind.WITHDRAWN, purpose.pk)

"""Audiences for campaign tests: people in every state the sending selector must tell apart."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from subscribers import services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, Subscriber, Suppression

WEB = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130")


@dataclass
class Audience:
    eligible: list[Subscriber]
    pending: Subscriber
    withdrawn: Subscriber
    suppressed: Subscriber
    other_purpose: Subscriber


def sign_up(email: str, *texts, confirm: bool = True, name: str = "") -> Subscriber:
    outcome = services.subscriber_sign_up(
        email=email,
        name=name,
        choices=[services.ConsentChoice(consent_text=t, channel=Channel.EMAIL) for t in texts],
        evidence=WEB,
    )
    if confirm and outcome.request:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=WEB)
    return Subscriber.objects.get(pk=outcome.subscriber.pk)


@pytest.fixture
def audience(consent_texts) -> Audience:
    news = consent_texts["newsletter"]
    eligible = [sign_up(f"reader{n}@example.org", news, name=f"Reader {n}") for n in range(5)]
    pending = sign_up("pending@example.org", news, confirm=False)
    withdrawn = sign_up("withdrawn@example.org", news)
    services.consent_withdraw(subscriber=withdrawn, purpose=news.purpose, channel=Channel.EMAIL, evidence=WEB)
    suppressed = sign_up("bounced@example.org", news)
    Suppression.objects.create(email_hash=suppressed.email_hash, reason=Suppression.Reason.HARD_BOUNCE)
    other = sign_up("promos-only@example.org", consent_texts["promotions"])
    return Audience(eligible, pending, withdrawn, suppressed, other)


# --- Provider webhooks ------------------------------------------------------------------


@pytest.fixture
def webhooks(settings):
    """The webhooks' shared secret and Mailgun's signing key, as production sets them."""
    from tests.marketing.provider_payloads import MAILGUN_SIGNING_KEY, SECRET

    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


@pytest.fixture
def sent_campaign(consent_texts, audience, settings, mailoutbox):
    """The newsletter, sent to the audience's five eligible readers (one message each)."""
    from marketing import services as campaign_services
    from tests.marketing.backends import ScriptedBackend

    settings.EMAIL_BACKEND = "tests.marketing.backends.ScriptedBackend"
    ScriptedBackend.failures, ScriptedBackend.refused = [], set()
    campaign = campaign_services.campaign_create(
        actor=None, name="News", purpose=consent_texts["newsletter"].purpose, subject="News", body="Hi"
    )
    campaign_services.campaign_send(campaign_id=campaign.pk, actor=None)  # runs eagerly
    mailoutbox.clear()
    campaign.refresh_from_db()
    return campaign

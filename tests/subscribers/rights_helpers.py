"""Shared by the data-rights tests: a subscriber with personal data in every place it can be.

Ada signs up from a distinctive IP address and browser, with her name and postal address,
confirms the newsletter by email and by post, has promotions still awaiting confirmation,
an address change open, one campaign delivered and one refused by her mail server (whose
refusal quotes her address).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.core import signing
from django.core.management import call_command
from django.utils import timezone

from marketing import services as campaign_services
from marketing.models import Campaign
from subscribers import links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, EmailChangeRequest, Subscriber
from tests.marketing.backends import ScriptedBackend

EMAIL = "ada@example.org"
NAME = "Ada Lovelace"
IP = "198.51.100.77"
UA = "AdaBrowser/7.1 (Analytical Engine)"
ADDRESS = {
    "address_line1": "12 Analytical Row",
    "address_line2": "Flat 3",
    "postal_code": "N1 7AA",
    "city": "London",
    "country": "United Kingdom",
}
PERSONAL = (EMAIL, NAME, IP, UA, "Analytical Row", "N1 7AA", "ada.new@example.org")
PAGE = "https://news.example.com/?ref=ada"


def web(**submitted) -> Evidence:
    return Evidence(
        source=ConsentEvent.Source.SIGNUP_PAGE,
        ip_address=IP,
        user_agent=UA,
        page_url=PAGE,
        submitted=submitted,
    )


@dataclass
class Ada:
    subscriber: Subscriber
    delivered: Campaign
    refused: Campaign


def sign_up(consent_texts, *, email: str = EMAIL, confirm: bool = True, name: str = NAME) -> Subscriber:
    evidence = web(email=email, name=name)
    outcome = services.subscriber_sign_up(
        email=email,
        name=name,
        postal_address=ADDRESS,
        choices=[
            services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL),
            services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.POSTAL),
        ],
        evidence=evidence,
    )
    if confirm and outcome.request:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)
    return Subscriber.objects.get(pk=outcome.subscriber.pk)


def send_campaign(consent_texts, *, name: str, subject: str, refuse: Collection[str] = ()) -> Campaign:
    ScriptedBackend.failures, ScriptedBackend.refused = [], set(refuse)
    campaign = campaign_services.campaign_create(
        actor=None, name=name, purpose=consent_texts["newsletter"].purpose, subject=subject, body="Hi"
    )
    campaign_services.campaign_send(campaign_id=campaign.pk, actor=None)  # runs eagerly
    campaign.refresh_from_db()
    return campaign


def make_ada(consent_texts, settings, mailoutbox) -> Ada:
    """Each test module's ``ada`` fixture returns this."""
    settings.EMAIL_BACKEND = "tests.marketing.backends.ScriptedBackend"
    settings.DISPATCH_RETRY_BASE_SECONDS = 0
    subscriber = sign_up(consent_texts)
    delivered = send_campaign(consent_texts, name="March news", subject="What's new in March")
    refused = send_campaign(consent_texts, name="April news", subject="April", refuse={EMAIL})
    ScriptedBackend.refused = set()
    services.subscriber_sign_up(
        email=EMAIL,
        name=NAME,
        choices=[services.ConsentChoice(consent_text=consent_texts["promotions"], channel=Channel.EMAIL)],
        evidence=web(email=EMAIL, name=NAME, wanted="promotions"),
    )
    EmailChangeRequest.objects.create(
        subscriber=subscriber, new_email="ada.new@example.org", expires_at=timezone.now() + timedelta(days=2)
    )
    mailoutbox.clear()
    subscriber.refresh_from_db()
    return Ada(subscriber, delivered, refused)


def token_issued(monkeypatch, *, hours_ago: float, subscriber: Subscriber, scope: str = "preferences") -> str:
    """A link token issued ``hours_ago``: the signer's clock is moved back while it is made."""
    issued = int(time.time() - hours_ago * 3600)
    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued))
        if scope == "unsubscribe":
            purpose = subscriber.consents.values_list("purpose_id", flat=True)[0]
            return links.make("unsubscribe", subscriber.pk, purpose)
        return selectors.preferences_token(subscriber)


def bad_tokens(monkeypatch, subscriber: Subscriber) -> dict[str, str]:
    """Every way a link can be wrong: forged, truncated, altered, expired, other scope, revoked."""
    good = selectors.preferences_token(subscriber)
    forged = signing.TimestampSigner(key="not-our-key", salt="subscribers.links.preferences").sign(
        good.split(":")[0]
    )
    return {
        "forged": forged,
        "truncated": good[:-6],
        "altered": good.replace(good.split(".")[0], signing.b62_encode(subscriber.pk + 1), 1),
        "nonsense": "nonsense",
        "expired": token_issued(monkeypatch, hours_ago=24 * 400, subscriber=subscriber),
        "other scope": token_issued(monkeypatch, hours_ago=0, subscriber=subscriber, scope="unsubscribe"),
    }


def link_in(message) -> str:
    """The path of the first link to this site in a message's text body."""
    match = re.search(r"https?://[^/\s]+(/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def dump(*apps: str) -> str:
    """Every row of these apps, as ``dumpdata`` writes them."""
    import io

    out = io.StringIO()
    call_command("dumpdata", *apps, stdout=out)
    return out.getvalue()

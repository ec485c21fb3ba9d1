"""One small installation for the access tests: two subscribers, staff in every role, and
one row of every model the admin shows, plus the links each subscriber was emailed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group
from django.core.mail import EmailMessage
from django.test import override_settings
from django.utils import timezone

from config.outbox import OutboxBackend
from marketing import services as marketing
from marketing import tracking
from marketing.models import Campaign, Delivery, DeliveryEvent, Layout
from subscribers import links, services, tokens
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConsentEvent,
    ConsentEvidence,
    ConsentText,
    EmailChangeRequest,
    Subscriber,
    Suppression,
)
from tests.factories import StaffFactory

ROLES = ("anonymous", "subscriber", "marketer", "compliance", "superuser")
STAFF_ROLES = ("marketer", "compliance", "superuser")
# What must never reach a Marketer's screen: evidence (IP addresses, user agents).
ADA_IP, ADA_AGENT = "203.0.113.7", "AdaBrowser/130"
BOB_IP, BOB_AGENT = "2001:db8::bb", "BobBrowser/7"


@dataclass
class World:
    ada: Subscriber
    bob: Subscriber
    text: ConsentText
    pending_request_id: str
    email_change: EmailChangeRequest
    campaign: Campaign
    delivery: Delivery
    delivery_event: DeliveryEvent
    layout: Layout
    suppression: Suppression
    event: ConsentEvent
    evidence: ConsentEvidence
    staff: dict[str, Any]  # role -> User
    group: Group
    outbox_name: str

    def token(self, kind: str, subscriber: Subscriber | None = None) -> str:
        """The token of the link of ``kind`` that was emailed to ``subscriber`` (Ada)."""
        who = subscriber or self.ada
        if kind == "preferences":
            return links.make("preferences", who.pk, generation=who.link_generation)
        if kind == "unsubscribe":
            return links.make("unsubscribe", who.pk, self.text.purpose_id)
        if kind == "confirm":
            return tokens.confirmation_token(self.pending_request_id)
        if kind == "email_change":
            return tokens.email_change_token(self.email_change.pk)
        if kind == "tracking":
            return tracking.make_token(self.delivery.pk)
        raise ValueError(kind)


def forged(token: str) -> str:
    """The same token with its signature's last character changed."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def sign_up(email: str, text: ConsentText, ip: str, agent: str, *, confirm: bool = True) -> Subscriber:
    evidence = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address=ip, user_agent=agent)
    outcome = services.subscriber_sign_up(
        email=email,
        choices=[services.ConsentChoice(consent_text=text, channel=Channel.EMAIL)],
        evidence=evidence,
        name=email.split("@")[0].title(),
    )
    assert outcome.request is not None
    if confirm:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)
    return Subscriber.objects.get(pk=outcome.subscriber.pk)


def build_world(consent_texts: dict[str, ConsentText], outbox_dir: Path) -> World:
    text = consent_texts["newsletter"]
    ada = sign_up("ada@example.org", text, ADA_IP, ADA_AGENT)
    bob = sign_up("bob@example.net", text, BOB_IP, BOB_AGENT)
    # Ada also asked for promotions and has not confirmed yet: her confirmation link is open.
    pending = services.subscriber_sign_up(
        email="ada@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["promotions"], channel=Channel.EMAIL)],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address=ADA_IP, user_agent=ADA_AGENT),
    )
    assert pending.request is not None
    change = services.email_change_request(
        subscriber=ada,
        new_email="ada@new.example",
        evidence=Evidence(
            source=ConsentEvent.Source.PREFERENCE_CENTRE, ip_address=ADA_IP, user_agent=ADA_AGENT
        ),
    )
    ada.refresh_from_db()
    layout = Layout.objects.create(name="Plain")
    campaign = marketing.campaign_create(
        actor=None,
        name="November",
        purpose=text.purpose,
        subject="November news",
        body="Hello, see [the tour](https://example.com/tour).",
    )
    delivery = Delivery.objects.create(
        campaign=campaign, subscriber=ada, status=Delivery.Status.SENT, sent_at=timezone.now(), tracked=True
    )
    delivery_event = DeliveryEvent.objects.create(
        delivery=delivery,
        campaign=campaign,
        esp_name="mailgun",
        event_type="delivered",
        recipient_hash=ada.email_hash,
        recipient_domain="example.org",
        occurred_at=timezone.now(),
        dedupe_key="delivered-1",
    )
    suppression = Suppression.objects.create(
        email_hash=services.address_hash("gone@example.com"), reason=Suppression.Reason.HARD_BOUNCE
    )
    event = ConsentEvent.objects.filter(subscriber=ada).order_by("seq").first()
    assert event is not None
    staff: dict[str, Any] = {
        "marketer": StaffFactory(username="mia"),
        "compliance": StaffFactory(username="carl"),
        "superuser": StaffFactory(username="root", is_superuser=True),
    }
    staff["marketer"].groups.add(Group.objects.get(name="Marketers"))
    staff["compliance"].groups.add(Group.objects.get(name="Compliance"))
    message = EmailMessage(
        "Your link", f"/preferences/{links.make('preferences', ada.pk)}/", to=[ada.email or ""]
    )
    outbox_dir.mkdir(parents=True, exist_ok=True)
    with override_settings(OUTBOX_DIR=outbox_dir):
        OutboxBackend().send_messages([message])
    return World(
        ada=ada,
        bob=bob,
        text=text,
        pending_request_id=str(pending.request.pk),
        email_change=change,
        campaign=campaign,
        delivery=delivery,
        delivery_event=delivery_event,
        layout=layout,
        suppression=suppression,
        event=event,
        evidence=ConsentEvidence.objects.get(event=event),
        staff=staff,
        group=Group.objects.get(name="Marketers"),
        outbox_name=next(outbox_dir.glob("*.eml")).name,
    )

"""Provider events: what each becomes, how it is matched, and what it does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import services as campaign_services
from marketing import tasks
from marketing.models import Delivery, DeliveryEvent
from subscribers import ledger
from subscribers.models import Channel, ConsentEvent, ConsentState, Subscriber, Suppression
from subscribers.selectors import sendable_consents
from subscribers.services import address_hash
from tests.marketing import provider_payloads as p

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("webhooks"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


@pytest.fixture
def deliveries(sent_campaign):
    return list(Delivery.objects.select_related("subscriber").filter(campaign=sent_campaign).order_by("id"))


@pytest.fixture
def delivery(deliveries):
    return deliveries[0]


def suppressed(subscriber, *, email=None):
    """The suppression in force for the subscriber's address (the audience has one of its own)."""
    hash_ = address_hash(email) if email else Subscriber.objects.get(pk=subscriber.pk).email_hash
    return Suppression.objects.filter(email_hash=hash_, lifted_at__isnull=True).first()


def post_ok(client, provider, payload):
    response = p.post(client, provider, payload)
    assert response.status_code == 200, response.content
    return DeliveryEvent.objects.order_by("-id").first()


def ids(d):
    return {"email": d.subscriber.email, "message_id": d.provider_message_id, "meta": p.metadata(d)}


def mailgun(d, kind, **kw):
    builders = {"hard": p.mailgun_hard_bounce, "soft": p.mailgun_temporary_failure}
    if kind in builders:
        return builders[kind](
            recipient=d.subscriber.email, message_id=d.provider_message_id, variables=p.metadata(d), **kw
        )
    return p.mailgun(
        kind, recipient=d.subscriber.email, message_id=d.provider_message_id, variables=p.metadata(d), **kw
    )


def sendgrid(d, kind, **kw):
    return [
        p.sendgrid(
            kind, email=d.subscriber.email, anymail_id=d.provider_message_id, custom=p.metadata(d), **kw
        )
    ]


MAPPING = [
    ("mailgun", lambda d: mailgun(d, "delivered"), ("delivered", "", "")),
    ("mailgun", lambda d: mailgun(d, "hard"), ("bounced", "hard", "bounced")),
    ("mailgun", lambda d: mailgun(d, "soft"), ("deferred", "soft", "other")),
    (
        "mailgun",
        lambda d: mailgun(d, "failed", severity="permanent", reason="old"),
        ("bounced", "soft", "other"),
    ),
    ("mailgun", lambda d: mailgun(d, "complained"), ("complained", "", "")),
    ("mailgun", lambda d: mailgun(d, "unsubscribed"), ("unsubscribed", "", "")),
    ("mailgun", lambda d: mailgun(d, "opened"), ("opened", "", "")),
    ("mailgun", lambda d: mailgun(d, "clicked", url="https://example.com/a"), ("clicked", "", "")),
    ("sendgrid", lambda d: sendgrid(d, "processed"), ("queued", "", "")),
    (
        "sendgrid",
        lambda d: sendgrid(d, "deferred", response="451 try later", attempt="1"),
        ("deferred", "soft", ""),
    ),
    (
        "sendgrid",
        lambda d: sendgrid(d, "bounce", type="bounce", status="5.1.1", reason="550 no such user"),
        ("bounced", "hard", ""),
    ),
    (
        "sendgrid",
        lambda d: sendgrid(d, "bounce", type="blocked", status="4.7.1", reason="421 rate"),
        ("bounced", "soft", ""),
    ),
    ("sendgrid", lambda d: sendgrid(d, "dropped", reason="Bounced Address"), ("rejected", "hard", "bounced")),
    (
        "sendgrid",
        lambda d: sendgrid(d, "dropped", reason="Unsubscribed Address"),
        ("rejected", "", "unsubscribed"),
    ),
    ("sendgrid", lambda d: sendgrid(d, "spamreport"), ("complained", "", "")),
    ("sendgrid", lambda d: sendgrid(d, "unsubscribe"), ("unsubscribed", "", "")),
    ("sendgrid", lambda d: sendgrid(d, "open", useragent="Mozilla/5.0"), ("opened", "", "")),
    (
        "postmark",
        lambda d: p.postmark_delivery(email=d.subscriber.email, message_id=d.provider_message_id),
        ("delivered", "", ""),
    ),
    ("postmark", lambda d: p.postmark_bounce(**_pm(d)), ("bounced", "hard", "bounced")),
    ("postmark", lambda d: p.postmark_bounce(**_pm(d), type_="SoftBounce"), ("bounced", "soft", "bounced")),
    ("postmark", lambda d: p.postmark_spam_complaint(**_pm(d)), ("complained", "", "spam")),
    ("postmark", lambda d: p.postmark_unsubscribe(**_pm(d)), ("unsubscribed", "", "unsubscribed")),
]


def _pm(d):
    return {"email": d.subscriber.email, "message_id": d.provider_message_id, "meta": p.metadata(d)}


@pytest.mark.parametrize(("provider", "build", "expected"), MAPPING)
def test_each_event_type_becomes_the_right_delivery_event(client, delivery, provider, build, expected):
    event = post_ok(client, provider, build(delivery))
    assert (event.event_type, event.bounce, event.reject_reason) == expected
    assert (event.delivery, event.campaign_id, event.matched) == (delivery, delivery.campaign_id, True)
    assert event.processed_at is not None and event.outcome


def test_an_event_for_an_unknown_message_is_kept_for_inspection(client, sent_campaign):
    payload = p.postmark_bounce(email="stranger@example.net", message_id="6a2c1e9b-unknown")
    event = post_ok(client, "postmark", payload)
    assert (event.delivery, event.campaign, event.matched) == (None, None, False)
    assert event.outcome == "no matching delivery: kept for inspection"
    assert suppressed(None, email="stranger@example.net") is None


def test_metadata_from_another_installation_is_not_trusted(client, delivery):
    meta = {"delivery_id": str(delivery.pk), "campaign_id": str(delivery.campaign_id + 1000)}
    payload = p.postmark_bounce(email=delivery.subscriber.email, message_id="other-install-id", meta=meta)
    assert post_ok(client, "postmark", payload).matched is False


def test_a_mailgun_batch_is_matched_by_message_id_and_recipient(client, deliveries):
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(
        provider_message_id="<batch.1@mg.example.com>"
    )
    target = deliveries[3]
    payload = p.mailgun_hard_bounce(recipient=target.subscriber.email, message_id="batch.1@mg.example.com")
    event = post_ok(client, "mailgun", payload)
    assert event.delivery == target


def test_a_hard_bounce_suppresses_the_address_with_provider_evidence(client, delivery, sent_campaign):
    subscriber = delivery.subscriber
    payload = mailgun(delivery, "hard")
    event = post_ok(client, "mailgun", payload)
    suppression = Suppression.objects.get(email_hash=subscriber.email_hash)
    assert suppression.reason == Suppression.Reason.HARD_BOUNCE
    assert suppression.detail.startswith("Mailgun bounced (bounced): 5.1.1 <[address]>")
    last = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq").first()
    assert (last.kind, last.purpose, last.channel) == (ConsentEvent.Kind.SUPPRESSED, None, "")
    assert (last.source, last.actor, last.actor_label) == ("provider", "provider", "Mailgun")
    assert last.evidence.submitted == {
        "event": "bounced",
        "reason": "bounced",
        "provider_event_id": payload["event-data"]["id"],
        "suppression": "hard_bounce",
    }
    assert event.outcome == "suppressed (hard bounce)"
    assert list(ledger.verify()) == []
    purpose_id = sent_campaign.purpose_id
    assert not sendable_consents(purpose_id=purpose_id).filter(subscriber=subscriber).exists()
    sent_campaign.refresh_from_db()
    assert (sent_campaign.bounced_count, sent_campaign.complained_count) == (1, 0)


def test_a_bounce_names_an_international_domain_in_ascii_and_still_suppresses(client, delivery):
    """We store "münchen" as typed and send to "xn--mnchen-3ya": the provider reports the latter."""
    stored = "ada@münchen.example"
    Subscriber.objects.filter(pk=delivery.subscriber_id).update(email=stored, email_hash=address_hash(stored))
    payload = p.mailgun_hard_bounce(
        recipient="ada@xn--mnchen-3ya.example",
        message_id=delivery.provider_message_id,
        variables=p.metadata(delivery),
    )
    event = post_ok(client, "mailgun", payload)
    assert event.outcome == "suppressed (hard bounce)"
    assert Suppression.objects.get(email_hash=address_hash(stored)).reason == Suppression.Reason.HARD_BOUNCE


def test_a_complaint_suppresses_and_withdraws_the_campaigns_purpose(client, delivery, sent_campaign):
    subscriber = delivery.subscriber
    payload = p.postmark_spam_complaint(**_pm(delivery))
    event = post_ok(client, "postmark", payload)
    assert Suppression.objects.get(email_hash=subscriber.email_hash).reason == Suppression.Reason.COMPLAINT
    suppressed, withdrawn = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq")[:2][::-1]
    assert suppressed.kind == ConsentEvent.Kind.SUPPRESSED
    assert (withdrawn.kind, withdrawn.purpose_id, withdrawn.channel) == (
        "withdrawn",
        sent_campaign.purpose_id,
        "email",
    )
    for recorded in (suppressed, withdrawn):
        assert (recorded.source, recorded.actor, recorded.actor_label) == ("provider", "provider", "Postmark")
    assert withdrawn.evidence.submitted == {
        "event": "complained",
        "reason": "spam",
        "provider_event_id": str(payload["ID"]),
    }
    state = ConsentState.objects.get(
        subscriber=subscriber, purpose_id=sent_campaign.purpose_id, channel=Channel.EMAIL
    )
    assert state.status == ConsentState.Status.WITHDRAWN
    assert event.outcome == "suppressed (spam complaint); withdrew Newsletter"
    assert list(ledger.verify()) == []
    assert not sendable_consents(purpose_id=sent_campaign.purpose_id).filter(subscriber=subscriber).exists()
    sent_campaign.refresh_from_db()
    assert sent_campaign.complained_count == 1


def test_a_provider_unsubscribe_suppresses_and_withdraws(client, delivery, sent_campaign):
    post_ok(client, "sendgrid", sendgrid(delivery, "unsubscribe"))
    subscriber = delivery.subscriber
    assert Suppression.objects.get(email_hash=subscriber.email_hash).reason == "provider_unsubscribe"
    assert (
        ConsentState.objects.get(subscriber=subscriber, purpose_id=sent_campaign.purpose_id).status
        == "withdrawn"
    )
    assert list(ledger.verify()) == []


def test_a_refusal_for_a_prior_unsubscribe_suppresses_without_withdrawing(client, delivery, sent_campaign):
    post_ok(client, "sendgrid", sendgrid(delivery, "dropped", reason="Unsubscribed Address"))
    subscriber = delivery.subscriber
    assert Suppression.objects.get(email_hash=subscriber.email_hash).reason == "provider_unsubscribe"
    assert (
        ConsentState.objects.get(subscriber=subscriber, purpose_id=sent_campaign.purpose_id).status
        == "active"
    )


def test_each_delivery_counts_once(client, delivery, sent_campaign):
    post_ok(client, "postmark", p.postmark_spam_complaint(**_pm(delivery)))
    post_ok(client, "postmark", p.postmark_spam_complaint(**_pm(delivery)))  # a second report, new id
    post_ok(client, "postmark", p.postmark_bounce(**_pm(delivery), type_="SoftBounce"))
    post_ok(client, "postmark", p.postmark_bounce(**_pm(delivery)))
    sent_campaign.refresh_from_db()
    assert (sent_campaign.complained_count, sent_campaign.bounced_count) == (1, 1)
    assert DeliveryEvent.objects.count() == 4


def test_a_bounce_of_an_address_changed_since_sending_does_not_suppress_the_new_one(client, delivery):
    new = "reader0.new@example.org"
    Subscriber.objects.filter(pk=delivery.subscriber_id).update(email=new, email_hash=address_hash(new))
    event = post_ok(client, "mailgun", mailgun(delivery, "hard"))
    assert event.matched
    assert event.outcome == "the subscriber's address changed since sending: not suppressed"
    assert suppressed(delivery.subscriber) is None


# --- Soft bounces -----------------------------------------------------------------------


def more_deliveries(subscriber, purpose, count) -> list[Delivery]:
    """Deliveries of ``count`` further campaigns to ``subscriber``, already sent."""
    made = []
    for n in range(count):
        campaign = campaign_services.campaign_create(
            actor=None, name=f"Issue {n}", purpose=purpose, subject="Issue", body="Hi"
        )
        made.append(
            Delivery.objects.create(
                campaign=campaign,
                subscriber=subscriber,
                status=Delivery.Status.SENT,
                provider_message_id=f"<issue{n}.{subscriber.pk}@mg.example.com>",
            )
        )
    return made


def test_soft_bounces_suppress_only_after_the_limit_in_a_row(client, delivery, sent_campaign):
    second, third = more_deliveries(delivery.subscriber, sent_campaign.purpose, 2)
    for n, d in enumerate([delivery, second], start=1):
        assert post_ok(client, "mailgun", mailgun(d, "soft")).outcome == f"soft bounce {n} of 3 in a row"
        # The provider retries the same message: still one delivery that soft-bounced.
        post_ok(client, "mailgun", mailgun(d, "soft"))
    assert suppressed(delivery.subscriber) is None
    assert post_ok(client, "mailgun", mailgun(third, "soft")).outcome == "suppressed (repeated soft bounces)"
    assert suppressed(delivery.subscriber).reason == Suppression.Reason.SOFT_BOUNCES
    assert list(ledger.verify()) == []


def test_a_delivered_message_resets_the_soft_bounce_count(client, delivery, sent_campaign, settings):
    settings.SOFT_BOUNCE_LIMIT = 2
    d1 = delivery
    d2, d3 = more_deliveries(delivery.subscriber, sent_campaign.purpose, 2)
    post_ok(client, "mailgun", mailgun(d1, "soft", timestamp=p.TIMESTAMP + 10))
    post_ok(client, "mailgun", mailgun(d2, "delivered", timestamp=p.TIMESTAMP + 20))
    event = post_ok(client, "mailgun", mailgun(d3, "soft", timestamp=p.TIMESTAMP + 30))
    assert event.outcome == "soft bounce 1 of 2 in a row"
    assert suppressed(delivery.subscriber) is None


def test_a_postmark_soft_bounce_is_not_a_hard_one(client, delivery):
    event = post_ok(client, "postmark", p.postmark_bounce(**_pm(delivery), type_="SoftBounce"))
    assert event.outcome == "soft bounce 1 of 3 in a row"
    assert suppressed(delivery.subscriber) is None


def test_events_whose_processing_was_lost_are_processed_by_the_sweep(client, delivery, monkeypatch):
    monkeypatch.setattr("marketing.provider_events._process_on_commit", lambda event_id: None)
    event = post_ok(client, "mailgun", mailgun(delivery, "hard"))
    assert event.processed_at is None and suppressed(delivery.subscriber) is None
    assert tasks.process_pending_delivery_events() == 0  # too recent: its task may still come
    DeliveryEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    monkeypatch.undo()
    assert tasks.process_pending_delivery_events() == 1
    event.refresh_from_db()
    assert event.processed_at is not None and suppressed(delivery.subscriber) is not None
    assert tasks.process_delivery_event(event.pk) == ""  # once only


def test_single_messages_carry_their_delivery_id(sent_campaign, consent_texts, mailoutbox):
    campaign = campaign_services.campaign_create(
        actor=None, name="Again", purpose=consent_texts["newsletter"].purpose, subject="Again", body="Hi"
    )
    campaign_services.campaign_send(campaign_id=campaign.pk, actor=None)
    delivery_of = dict(Delivery.objects.filter(campaign=campaign).values_list("subscriber__email", "pk"))
    assert len(mailoutbox) == 5
    for message in mailoutbox:
        assert message.metadata == {
            "delivery_id": str(delivery_of[message.to[0]]),
            "campaign_id": str(campaign.pk),
        }

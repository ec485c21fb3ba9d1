"""``seed_demo --subscribers N``: set-based demo subscribers whose ledger is the real thing."""

import pytest
from django.core.management import call_command

from marketing.models import Campaign, Delivery
from marketing.services import campaign_create, campaign_send
from subscribers import ledger, services
from subscribers.bulk import seed_subscribers
from subscribers.models import ConsentEvent, ConsentEvidence, ConsentState, Subscriber
from subscribers.selectors import sendable_consents

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_subscribers_have_confirmed_consent_and_a_ledger_that_verifies(consent_texts):
    result = seed_subscribers(count=25, chunk_size=10)

    demo = Subscriber.objects.filter(email__startswith="demo-")
    assert result.subscribers == demo.count() == 25
    purposes = len(consent_texts)
    assert ConsentEvent.objects.filter(subscriber__in=demo).count() == result.events == 25 * purposes * 2
    assert ConsentEvidence.objects.filter(event__subscriber__in=demo).count() == result.evidence
    active = ConsentState.objects.filter(subscriber__in=demo, status=ConsentState.Status.ACTIVE)
    assert active.count() == result.states == 25 * purposes
    # The database computed the same hashes the Python ledger would: the chains verify.
    assert list(ledger.verify()) == []
    first = demo.order_by("id").first()
    assert first is not None and first.email == "demo-000000001@example.net"
    assert first.email_hash == services.address_hash(first.email)
    for text in consent_texts.values():
        assert sendable_consents(purpose_id=text.purpose_id).filter(subscriber__in=demo).count() == 25


def test_seeding_again_adds_more_and_a_real_signup_still_chains_after_them(settings, consent_texts, tmp_path):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    call_command("seed_demo", "--subscribers", "7", "--chunk-size", "3")
    call_command("seed_demo", "--subscribers", "5")

    emails = sorted(Subscriber.objects.filter(email__startswith="demo-").values_list("email", flat=True))
    assert len(emails) == 12
    assert emails[-1] == "demo-000000012@example.net"
    # Ordinary services append to a bulk subscriber's chain without breaking it.
    subscriber = Subscriber.objects.get(email=emails[0])
    text = consent_texts["newsletter"]
    services.consent_withdraw(
        subscriber=subscriber,
        purpose=text.purpose,
        channel="email",
        evidence=ledger.Evidence(source=ConsentEvent.Source.ADMIN),
    )
    assert list(ledger.verify()) == []

    # A campaign snapshot picks the bulk subscribers up like any other.
    campaign = campaign_create(actor=None, purpose=text.purpose, subject="Hello", body="Hi", name="bulk")
    campaign_send(campaign_id=campaign.pk, actor=None)
    campaign.refresh_from_db()
    assert campaign.status in (Campaign.Status.SENDING, Campaign.Status.SENT)
    assert Delivery.objects.filter(campaign=campaign, subscriber__email__startswith="demo-").count() == 11

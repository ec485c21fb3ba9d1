"""The one sending selector honours each subscriber's pause and chosen frequency."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import services
from marketing.models import Delivery
from subscribers import ledger
from subscribers import services as subscriber_services
from subscribers.models import Channel, ConsentEvent, ConsentState, Frequency
from subscribers.selectors import audience_breakdown, sendable_consents
from tests.marketing.backends import ScriptedBackend, sent_to
from tests.marketing.conftest import WEB

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scripted_backend(settings):
    settings.EMAIL_BACKEND = "tests.marketing.backends.ScriptedBackend"
    ScriptedBackend.failures = []
    ScriptedBackend.refused = set()


def newsletter(consent_texts):
    return consent_texts["newsletter"].purpose


def send_campaign(purpose, name: str):
    campaign = services.campaign_create(actor=None, name=name, purpose=purpose, subject=name, body="Hi")
    services.campaign_send(campaign_id=campaign.pk, actor=None)
    return campaign


def test_a_paused_subscriber_is_held_back_until_the_pause_ends(audience, consent_texts):
    purpose = newsletter(consent_texts)
    resting = audience.eligible[0]
    event = subscriber_services.subscriber_pause(subscriber=resting, months=3, evidence=WEB)

    assert event.kind == ConsentEvent.Kind.PAUSED and event.purpose is None
    assert event.evidence.submitted["months"] == 3
    resting.refresh_from_db()
    assert resting.paused_until is not None
    assert timedelta(days=89) < resting.paused_until - timezone.now() <= timedelta(days=90)
    chosen = set(sendable_consents(purpose_id=purpose.pk).values_list("subscriber_id", flat=True))
    assert resting.pk not in chosen and len(chosen) == 4
    assert audience_breakdown(purpose_id=purpose.pk)["paused"] == 1
    # The pause holds back; it withdraws nothing.
    state = ConsentState.objects.get(subscriber=resting, purpose=purpose, channel=Channel.EMAIL)
    assert state.status == ConsentState.Status.ACTIVE

    # Once the pause is over they are back, without doing anything.
    later = resting.paused_until + timedelta(seconds=1)
    assert sendable_consents(purpose_id=purpose.pk, now=later).filter(subscriber=resting).exists()
    # Or they end it early.
    assert subscriber_services.subscriber_resume(subscriber=resting, evidence=WEB).kind == "resumed"
    assert sendable_consents(purpose_id=purpose.pk).filter(subscriber=resting).exists()
    assert subscriber_services.subscriber_resume(subscriber=resting, evidence=WEB) is None
    assert list(ledger.verify()) == []


def test_pause_lengths_are_the_ones_offered(audience):
    with pytest.raises(ValueError):
        subscriber_services.subscriber_pause(subscriber=audience.eligible[0], months=12, evidence=WEB)


def test_at_most_weekly_holds_back_a_second_campaign_within_seven_days(audience, consent_texts, mailoutbox):
    purpose = newsletter(consent_texts)
    weekly, monthly = audience.eligible[0], audience.eligible[1]
    subscriber_services.consent_frequency_set(
        subscriber=weekly, purpose=purpose, frequency=Frequency.WEEKLY, evidence=WEB
    )
    subscriber_services.consent_frequency_set(
        subscriber=monthly, purpose=purpose, frequency=Frequency.MONTHLY, evidence=WEB
    )
    mailoutbox.clear()

    send_campaign(purpose, "First")
    assert set(sent_to()) == {s.email for s in audience.eligible}
    state = ConsentState.objects.get(subscriber=weekly, purpose=purpose, channel=Channel.EMAIL)
    assert state.last_sent_at is not None

    mailoutbox.clear()
    second = send_campaign(purpose, "Second")
    # Every issue: they get the second one too; weekly and monthly readers do not.
    assert set(sent_to()) == {s.email for s in audience.eligible[2:]}
    assert not Delivery.objects.filter(campaign=second, subscriber__in=[weekly, monthly]).exists()

    eight_days = timezone.now() + timedelta(days=8)
    allowed = set(
        sendable_consents(purpose_id=purpose.pk, now=eight_days).values_list("subscriber_id", flat=True)
    )
    assert weekly.pk in allowed and monthly.pk not in allowed
    breakdown = audience_breakdown(purpose_id=purpose.pk, now=eight_days)
    assert breakdown["frequency"] == 1 and breakdown["eligible"] == 4
    assert monthly.pk in set(
        sendable_consents(purpose_id=purpose.pk, now=timezone.now() + timedelta(days=31)).values_list(
            "subscriber_id", flat=True
        )
    )


def test_a_frequency_change_is_a_ledger_event_and_unchanged_is_not(audience, consent_texts):
    purpose = newsletter(consent_texts)
    reader = audience.eligible[0]
    event = subscriber_services.consent_frequency_set(
        subscriber=reader, purpose=purpose, frequency="monthly", evidence=WEB
    )
    assert event is not None
    assert (event.kind, event.purpose_id, event.channel) == ("frequency_changed", purpose.pk, "email")
    assert event.evidence.submitted == {"frequency": "monthly", "previous": "every"}
    assert event.evidence.ip_address == WEB.ip_address
    assert (
        subscriber_services.consent_frequency_set(
            subscriber=reader, purpose=purpose, frequency="monthly", evidence=WEB
        )
        is None
    )
    assert list(ledger.verify()) == []


def test_consent_state_pages_keep_room_for_the_last_sent_write():
    """``last_sent_at`` is in no index: with room on the page its write is a HOT update."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("fillfactor is PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [ConsentState._meta.db_table])
        assert cursor.fetchone()[0] == ["fillfactor=80"]
    indexed = set()
    for index in ConsentState._meta.indexes + ConsentState._meta.constraints:
        indexed.update(getattr(index, "fields", ()))
    assert "last_sent_at" not in indexed

"""Campaign lifecycle and the audience snapshot, with the audit rows they leave."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketing import services
from marketing.models import Campaign, CampaignAction, Delivery
from subscribers.selectors import audience_breakdown, sendable_consents
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer():
    return StaffFactory(username="mia")


@pytest.fixture
def draft(consent_texts, marketer):
    return services.campaign_create(
        actor=marketer,
        name="November news",
        purpose=consent_texts["newsletter"].purpose,
        subject="News for {{ first_name }}",
        body="Hello {{ first_name }}!",
    )


def test_the_one_selector_leaves_out_everyone_who_may_not_be_emailed(audience, consent_texts):
    purpose_id = consent_texts["newsletter"].purpose_id
    chosen = set(sendable_consents(purpose_id=purpose_id).values_list("subscriber_id", flat=True))
    assert chosen == {s.pk for s in audience.eligible}
    assert audience_breakdown(purpose_id=purpose_id) == {
        "eligible": 5,
        "suppressed": 1,
        "unconfirmed": 1,
        "no_consent": 2,  # the withdrawn one and the promotions-only one
        "paused": 0,
        "frequency": 0,
    }


def test_snapshot_is_one_insert_select_for_exactly_the_eligible(audience, draft, marketer, settings):
    settings.DISPATCH_BATCH_SIZE = 2
    with CaptureQueriesContext(connection) as queries:
        services.campaign_send(campaign_id=draft.pk, actor=marketer)
    inserts = [
        q["sql"]
        for q in queries.captured_queries
        if 'INSERT INTO "marketing_delivery"' in q["sql"] or "INSERT INTO marketing_delivery" in q["sql"]
    ]
    assert len(inserts) == 1 and "SELECT" in inserts[0]
    assert {d.subscriber_id for d in Delivery.objects.filter(campaign=draft)} == {
        s.pk for s in audience.eligible
    }
    draft.refresh_from_db()
    assert draft.recipients_count == 5


def test_sending_twice_is_refused_and_never_duplicates_deliveries(audience, draft, marketer):
    services.campaign_send(campaign_id=draft.pk, actor=marketer)
    with pytest.raises(services.CampaignStateError):
        services.campaign_send(campaign_id=draft.pk, actor=marketer)
    assert Delivery.objects.filter(campaign=draft).count() == 5


def test_every_staff_action_is_recorded_with_who_and_when(audience, draft, marketer):
    services.campaign_update(campaign_id=draft.pk, actor=marketer, subject="Fresh news")
    services.campaign_schedule(campaign_id=draft.pk, actor=marketer, at=timezone.now())
    assert services.campaigns_start_due() == [draft.pk]
    assert services.campaigns_start_due() == []  # a scheduler that runs again starts nothing twice
    actions = list(
        CampaignAction.objects.filter(campaign=draft).order_by("id").values_list("action", "actor_label")
    )
    assert actions[:4] == [("create", "mia"), ("edit", "mia"), ("schedule", "mia"), ("send", "system")]


def test_a_sending_campaign_cannot_be_edited(audience, draft, marketer):
    Campaign.objects.filter(pk=draft.pk).update(status=Campaign.Status.SENDING)
    with pytest.raises(services.CampaignStateError, match="can no longer be edited"):
        services.campaign_update(campaign_id=draft.pk, actor=marketer, subject="Changed")
    draft.refresh_from_db()
    assert draft.subject == "News for {{ first_name }}"


def test_pause_resume_cancel(audience, draft, marketer):
    Campaign.objects.filter(pk=draft.pk).update(status=Campaign.Status.SENDING)
    services.campaign_pause(campaign_id=draft.pk, actor=marketer, reason="typo in the subject")
    with pytest.raises(services.CampaignStateError):
        services.campaign_pause(campaign_id=draft.pk, actor=marketer)
    services.campaign_cancel(campaign_id=draft.pk, actor=marketer)
    draft.refresh_from_db()
    assert draft.status == Campaign.Status.CANCELLED
    assert list(
        CampaignAction.objects.filter(campaign=draft).values_list("action", flat=True).order_by("id")
    ) == [
        "create",
        "pause",
        "cancel",
    ]

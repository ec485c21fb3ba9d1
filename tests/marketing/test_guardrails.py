"""Guardrails: a sending campaign with too many complaints or bounces pauses itself."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from marketing import dispatch, rendering, tasks
from marketing import services as campaign_services
from marketing.models import Campaign, CampaignAction, Delivery
from tests.factories import StaffFactory
from tests.marketing import provider_payloads as p
from tests.marketing.backends import ScriptedBackend

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhooks")]


def post_ok(client, provider, payload):
    assert p.post(client, provider, payload).status_code == 200


def _pm(d):
    return {"email": d.subscriber.email, "message_id": d.provider_message_id, "meta": p.metadata(d)}


def mailgun(d, kind):
    assert kind == "hard"
    return p.mailgun_hard_bounce(
        recipient=d.subscriber.email, message_id=d.provider_message_id, variables=p.metadata(d)
    )


@pytest.fixture
def sending(consent_texts, audience, settings, mailoutbox, monkeypatch):
    """The newsletter, started with its first batch of two sent and the rest queued."""
    settings.EMAIL_BACKEND = "tests.marketing.backends.ScriptedBackend"
    settings.DISPATCH_BATCH_SIZE = 2
    ScriptedBackend.failures, ScriptedBackend.refused = [], set()
    campaign = campaign_services.campaign_create(
        actor=None, name="News", purpose=consent_texts["newsletter"].purpose, subject="News", body="Hi"
    )
    with monkeypatch.context() as patched:
        patched.setattr(tasks.run_campaign, "delay", lambda *args: None)  # no runner: batches by hand
        campaign_services.campaign_send(campaign_id=campaign.pk, actor=None)
    campaign = Campaign.objects.select_related("purpose", "layout").get(pk=campaign.pk)
    batch = dispatch.claim_batch(campaign_id=campaign.pk, size=2)
    dispatch.send_batch(campaign=campaign, prepared=rendering.prepare(campaign), delivery_ids=batch)
    mailoutbox.clear()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_count) == (Campaign.Status.SENDING, 2)
    return campaign


def first_sent(campaign):
    return (
        Delivery.objects.select_related("subscriber").filter(campaign=campaign, status="sent").order_by("id")
    )


def test_a_campaign_over_the_complaint_limit_pauses_and_staff_are_told(client, sending, settings, mailoutbox):
    settings.GUARDRAIL_MIN_SENT = 2
    marketer = StaffFactory(email="marketer@example.com")
    marketer.groups.add(Group.objects.get(name="Marketers"))
    settings.ADMINS = [("Ops", "ops@example.com")]
    post_ok(client, "postmark", p.postmark_spam_complaint(**_pm(first_sent(sending)[0])))
    sending.refresh_from_db()
    assert sending.status == Campaign.Status.PAUSED
    assert sending.paused_reason == (
        "Paused automatically: 1 spam complaint from 2 messages sent (50.00%), at or above the 0.10% "
        "limit. Mailbox providers block senders above 0.1%. "
        "Check who got this and why, then resume or cancel."
    )
    action = CampaignAction.objects.filter(campaign=sending).first()
    assert (action.action, action.actor_label) == ("pause", "system")
    assert action.detail == {
        "guardrail": "complaints",
        "count": 1,
        "sent": 2,
        "reason": sending.paused_reason,
    }
    [notice] = mailoutbox
    assert notice.to == ["marketer@example.com", "ops@example.com"]
    assert notice.subject == "Campaign paused: News"
    assert sending.paused_reason in notice.body
    assert f"/admin/marketing/campaign/{sending.pk}/change/" in notice.body

    # Staff looked and resumed: the same complaint does not pause it again.
    campaign_services.campaign_resume(campaign_id=sending.pk, actor=marketer)  # runs the rest eagerly
    sending.refresh_from_db()
    assert (sending.status, sending.sent_count) == (Campaign.Status.SENT, 5)


def test_dispatch_pauses_between_batches_once_the_sample_is_big_enough(client, sending, settings):
    settings.GUARDRAIL_MIN_SENT = 4
    settings.GUARDRAIL_BOUNCE_RATE = 0.25
    bounced = first_sent(sending)[0]
    post_ok(client, "mailgun", mailgun(bounced, "hard"))
    sending.refresh_from_db()
    assert (sending.status, sending.bounced_count) == (Campaign.Status.SENDING, 1)  # 2 sent: too few
    dispatch.run(campaign_id=sending.pk)  # the next batch makes it 4
    sending.refresh_from_db()
    assert (sending.status, sending.sent_count) == (Campaign.Status.PAUSED, 4)
    assert sending.paused_reason.startswith("Paused automatically: 1 of 4 messages sent bounced (25.0%)")

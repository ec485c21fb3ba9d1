"""End to end: a campaign sent by a real worker through a local provider, whose bounce and
complaint webhooks the worker processes: suppression, a ledger withdrawal, the campaign
paused by its guardrail, and the same numbers in the campaign's report."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group

from marketing.models import Campaign, CampaignAction, Delivery, DeliveryEvent
from marketing.reports import rollup
from marketing.reports.campaign import campaign_report
from subscribers.models import ConsentEvent, Suppression
from tests.e2e import campaign_helpers as helpers
from tests.e2e.provider_server import PostmarkServer, serve
from tests.factories import StaffFactory
from tests.marketing import provider_payloads as p

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhooks"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]
TOKEN = "test-token"


@pytest.fixture
def provider() -> Iterator[PostmarkServer]:
    yield from serve(token=TOKEN)


def processed(event_type: str) -> bool:
    return DeliveryEvent.objects.filter(event_type=event_type, processed_at__isnull=False).exists()


def test_a_bounce_and_a_complaint_suppress_withdraw_pause_and_show_in_the_report(
    client, consent_texts, provider, start_celery_worker, settings
):
    audience = helpers.make_audience(consent_texts, eligible=30)
    # Two messages a second, one per batch: the campaign is still sending when the reports
    # come. One runner, so the second worker is free to process the provider's events.
    settings.DISPATCH_RUNNERS = 1
    env = helpers.worker_env(
        provider.email_url, SEND_RATE_PER_SECOND=2, DISPATCH_BATCH_SIZE=1, GUARDRAIL_MIN_SENT=2
    )
    worker, _events = start_celery_worker(**env), start_celery_worker(**env)
    campaign = helpers.start_campaign(audience)

    def sent() -> list[Delivery]:
        rows = Delivery.objects.select_related("subscriber").filter(campaign=campaign, status="sent")
        return list(rows.exclude(provider_message_id="").order_by("id"))

    helpers.wait_until(lambda: len(sent()) >= 2, timeout=30, what="two messages sent", log=worker.log)
    complainer, bouncer = sent()[:2]

    def report(d: Delivery, payload: Any) -> None:
        assert p.post(client, "postmark", payload).status_code == 200

    pm = {"message_id": complainer.provider_message_id, "meta": p.metadata(complainer)}
    report(complainer, p.postmark_spam_complaint(email=complainer.subscriber.email, **pm))
    helpers.wait_until(lambda: processed("complained"), timeout=30, what="the complaint", log=worker.log)
    pm = {"message_id": bouncer.provider_message_id, "meta": p.metadata(bouncer)}
    report(bouncer, p.postmark_bounce(email=bouncer.subscriber.email, **pm))
    helpers.wait_until(lambda: processed("bounced"), timeout=30, what="the bounce", log=worker.log)

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED, (campaign.status, worker.log())
    pause = CampaignAction.objects.get(campaign=campaign, action="pause")
    assert pause.detail["guardrail"] == "complaints"
    ours = [complainer.subscriber.email_hash, bouncer.subscriber.email_hash]
    in_force = Suppression.objects.filter(lifted_at__isnull=True, email_hash__in=ours)
    reasons = dict(in_force.values_list("email_hash", "reason"))
    assert reasons == {
        complainer.subscriber.email_hash: Suppression.Reason.COMPLAINT,
        bouncer.subscriber.email_hash: Suppression.Reason.HARD_BOUNCE,
    }
    withdrawal = ConsentEvent.objects.get(subscriber=complainer.subscriber, kind="withdrawn")
    assert (withdrawal.purpose_id, withdrawal.source) == (audience.purpose.pk, "provider")
    assert not ConsentEvent.objects.filter(subscriber=bouncer.subscriber, kind="withdrawn").exists()

    rollup.campaign_stats_refresh()
    numbers = {s.key: s.count for s in campaign_report(campaign).stages}
    assert numbers["targeted"] == 30
    assert numbers["sent"] == campaign.sent_count >= 2
    assert (numbers["bounced"], numbers["complained"], numbers["unsubscribed"]) == (1, 1, 1)
    marketer: Any = StaffFactory(username="mia")
    marketer.groups.add(Group.objects.get(name="Marketers"))
    client.force_login(marketer)
    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/report/").content.decode()
    assert '<th scope="row">Complained</th><td>1</td>' in page
    assert '<th scope="row">Bounced</th><td>1</td>' in page

"""The scheduler down when a campaign was due: it is sent once when the scheduler returns,
not twice, even with a second scheduler started by mistake beside it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import services as marketing
from marketing import tasks
from marketing.models import Campaign, CampaignAction, Delivery
from tests.conftest import SMTPServer, WorkerProcess
from tests.e2e import campaign_helpers as helpers
from tests.faults import guarantees
from tests.faults.conftest import Beats

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH = 5
# The scheduler's periods, short so that the test is too.
BEAT = {"START_DUE_CAMPAIGNS_EVERY_SECONDS": "0.5", "KEEP_CAMPAIGNS_MOVING_EVERY_SECONDS": "1"}


def test_a_campaign_due_while_the_scheduler_was_down_is_sent_once_when_it_returns(
    consent_texts,
    smtp_server: SMTPServer,
    start_celery_worker: Callable[..., WorkerProcess],
    beats: Beats,
):
    audience = helpers.make_audience(consent_texts, eligible=15)
    worker = start_celery_worker(**helpers.worker_env(smtp_server.url, DISPATCH_BATCH_SIZE=BATCH))
    logs = lambda: worker.log() + beats.log()  # noqa: E731
    draft = marketing.campaign_create(
        actor=None, name="November news", purpose=audience.purpose, subject="November news", body=helpers.BODY
    )
    due_at = timezone.now() + timedelta(seconds=1)
    campaign = marketing.campaign_schedule(campaign_id=draft.pk, actor=None, at=due_at)

    # Due, and no scheduler: nothing happens, and meanwhile someone leaves.
    time.sleep(max((due_at - timezone.now()).total_seconds(), 0) + 1.5)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert not Delivery.objects.filter(campaign=campaign).exists()
    leaver = audience.eligible[-1]
    helpers.withdraw(leaver, audience.purpose)

    # The scheduler comes back, and a second one is started beside it by mistake.
    beats.start(**BEAT)
    beats.start(**BEAT)
    guarantees.wait_until_finished(campaign, log=logs, sweep=False)
    # Both keep ticking for a while; and a late run of the task by hand finds nothing to start.
    time.sleep(2)
    assert tasks.start_due_campaigns() == []
    assert "start_due_campaigns" in beats.log()

    received = [rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos]
    assert set(Counter(received).values()) == {1}
    guarantees.check(
        fault="scheduler down when the campaign was due",
        campaign=campaign,
        audience=audience,
        received=received,
        batch=BATCH,
        withdrawn=[leaver],
        audit=[CampaignAction.Action.SCHEDULE],
    )

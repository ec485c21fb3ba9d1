"""The provider misbehaving: 429, 500, a long outage, timeouts, reset connections, and a
batch with one address it refuses; then an SMTP server that does the same.

Mailgun is spoken by a local server (``tests/e2e/mailgun_server.py``) through anymail's real
backend, one API call per batch; SMTP by a local aiosmtpd server (``transport_faults``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from marketing import services as marketing
from marketing.models import Campaign, CampaignAction, Delivery
from tests.conftest import WorkerProcess
from tests.e2e import campaign_helpers as helpers
from tests.e2e.mailgun_server import MailgunServer
from tests.e2e.transport_faults import FaultySMTPServer
from tests.faults import guarantees

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH = 5
RECIPIENTS = 15
# Short delays, and a failure-rate pause that would trip at once if a transient error counted.
WORKER = {
    "DISPATCH_BATCH_SIZE": BATCH,
    "SEND_RATE_PER_SECOND": BATCH,
    "DISPATCH_RETRY_BASE_SECONDS": 0.3,
    "DISPATCH_LEASE_SECONDS": 5,
    "DISPATCH_FAILURE_MIN_SAMPLE": 1,
    "DISPATCH_MAX_FAILURE_RATE": 0.2,
    "ANYMAIL_REQUESTS_TIMEOUT": 1,
}

FAULTS = {
    "429 with Retry-After": lambda server, audience: server.throttle(2, retry_after=1),
    "500": lambda server, audience: server.fail(2),
    "timeout (accepted, answered too late)": lambda server, audience: server.faults.add("hang"),
    "connection reset": lambda server, audience: server.faults.add("reset", 2),
    "one bad address: batch refused (400)": lambda server, audience: server.refuse(
        audience.eligible[2].email
    ),
}


def faulted(server: MailgunServer) -> bool:
    return any(call.status != 200 for call in server.calls) or bool(server.faults.injected)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_provider_faults(
    fault: str, consent_texts, mailgun: MailgunServer, start_celery_worker: Callable[..., WorkerProcess]
):
    audience = helpers.make_audience(consent_texts, eligible=RECIPIENTS)
    FAULTS[fault](mailgun, audience)
    campaign = helpers.start_campaign(audience)
    with guarantees.withdrawal_during_fault(campaign, audience) as leaver:
        worker = start_celery_worker(**helpers.worker_env(mailgun.email_url, **WORKER))
        helpers.wait_until(lambda: faulted(mailgun), timeout=20, what="the fault", log=worker.log)
    guarantees.wait_until_finished(campaign, log=worker.log)

    refused = mailgun.refused
    guarantees.check(
        fault=f"Mailgun: {fault}",
        campaign=campaign,
        audience=audience,
        received=[m.address for m in mailgun.messages],
        batch=BATCH,
        withdrawn=[leaver],
        refused=refused,
    )
    for delivery in Delivery.objects.filter(campaign=campaign, status=Delivery.Status.FAILED):
        assert "not a valid address" in delivery.error, delivery.error  # the provider's own words


def test_a_long_provider_outage_pauses_the_campaign_and_fails_nobody(
    consent_texts, mailgun: MailgunServer, start_celery_worker: Callable[..., WorkerProcess]
):
    audience = helpers.make_audience(consent_texts, eligible=RECIPIENTS)
    mailgun.fail(10_000)
    campaign = helpers.start_campaign(audience)
    with guarantees.withdrawal_during_fault(campaign, audience) as leaver:
        worker = start_celery_worker(
            **helpers.worker_env(mailgun.email_url, **{**WORKER, "DISPATCH_MAX_ATTEMPTS": 3})
        )
        helpers.wait_until(lambda: faulted(mailgun), timeout=20, what="the outage", log=worker.log)

    def paused() -> bool:
        campaign.refresh_from_db()
        return campaign.status == Campaign.Status.PAUSED

    helpers.wait_until(paused, timeout=30, what="the campaign to pause", log=worker.log)
    assert "provider kept failing" in campaign.paused_reason
    assert campaign.failed_count == 0
    assert not Delivery.objects.filter(campaign=campaign, status=Delivery.Status.FAILED).exists()

    mailgun.fail(0)
    marketing.campaign_resume(campaign_id=campaign.pk, actor=None)
    guarantees.wait_until_finished(campaign, log=worker.log)

    guarantees.check(
        fault="Mailgun: 500 for longer than the retries",
        campaign=campaign,
        audience=audience,
        received=[m.address for m in mailgun.messages],
        batch=BATCH,
        withdrawn=[leaver],
        audit=[CampaignAction.Action.PAUSE, CampaignAction.Action.RESUME],
    )


def test_smtp_faults(
    consent_texts, faulty_smtp: FaultySMTPServer, start_celery_worker: Callable[..., WorkerProcess]
):
    audience = helpers.make_audience(consent_texts, eligible=RECIPIENTS)
    refused = audience.eligible[3].email or ""
    faulty_smtp.refused.add(refused)
    for kind in ("451", "reset", "421"):
        faulty_smtp.faults.add(kind)
    campaign = helpers.start_campaign(audience)
    with guarantees.withdrawal_during_fault(campaign, audience) as leaver:
        worker = start_celery_worker(
            **helpers.worker_env(faulty_smtp.url, **WORKER, EMAIL_URL=faulty_smtp.url + "?timeout=2")
        )
        helpers.wait_until(
            lambda: bool(faulty_smtp.faults.injected), timeout=20, what="the fault", log=worker.log
        )
    guarantees.wait_until_finished(campaign, log=worker.log)

    assert faulty_smtp.faults.injected == {"451": 1, "reset": 1, "421": 1}
    guarantees.check(
        fault="SMTP: 451, reset, 421, one recipient refused (550)",
        campaign=campaign,
        audience=audience,
        received=[rcpt for mail in faulty_smtp.messages for rcpt in mail.rcpt_tos],
        batch=BATCH,
        withdrawn=[leaver],
        refused={refused},
    )

"""A large send does not hold up someone's double opt-in email: one real worker (solo pool),
one campaign runner, and a sign-up in the middle of the send."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from marketing.models import Campaign, Delivery
from tests.conftest import SMTPServer, WorkerProcess
from tests.e2e import campaign_helpers as helpers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 40
BATCH = 5


def test_a_confirmation_email_goes_out_during_a_long_send(
    consent_texts, settings, smtp_server: SMTPServer, start_celery_worker: Callable[..., WorkerProcess]
):
    settings.DISPATCH_RUNNERS = 1  # the campaign starts here, in the test process
    audience = helpers.make_audience(consent_texts, eligible=RECIPIENTS)
    # Paced to take about eight seconds; the runner gives its worker back every second.
    worker = start_celery_worker(
        **helpers.worker_env(
            smtp_server.url,
            DISPATCH_BATCH_SIZE=BATCH,
            SEND_RATE_PER_SECOND=BATCH,
            DISPATCH_RUN_SECONDS=1,
        )
    )
    campaign = helpers.start_campaign(audience)
    helpers.wait_until(
        lambda: helpers.count(campaign, Delivery.Status.SENT) >= BATCH,
        timeout=20,
        what="the first batch",
        log=worker.log,
    )

    helpers.sign_up("newcomer@example.org", consent_texts["newsletter"], name="New", confirm=False)

    def confirmation_arrived() -> bool:
        return any("newcomer@example.org" in mail.rcpt_tos for mail in smtp_server.messages)

    helpers.wait_until(confirmation_arrived, timeout=20, what="the confirmation email", log=worker.log)
    campaign.refresh_from_db()
    sent = helpers.count(campaign, Delivery.Status.SENT)
    assert campaign.status == Campaign.Status.SENDING and sent < RECIPIENTS, (campaign.status, sent)

    helpers.wait_until_sent(campaign, log=worker.log, timeout=30)
    assert helpers.count(campaign, Delivery.Status.SENT) == RECIPIENTS
    copies = [rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos]
    assert sorted(copies) == sorted([*audience.eligible_emails, "newcomer@example.org"])

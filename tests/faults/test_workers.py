"""Workers killed with SIGKILL mid-campaign: one of two, then every worker, restarted."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest

from marketing.models import Delivery
from tests.conftest import SMTPServer, WorkerProcess
from tests.e2e import campaign_helpers as helpers
from tests.faults import guarantees

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH = 5


def kill(worker: WorkerProcess) -> None:
    os.kill(worker.process.pid, signal.SIGKILL)  # --pool=solo: the worker is this one process
    worker.process.wait(timeout=10)


@pytest.mark.parametrize("killed", ["one worker", "all workers"])
def test_workers_killed_mid_campaign(
    killed: str, consent_texts, smtp_server: SMTPServer, start_celery_worker: Callable[..., WorkerProcess]
):
    audience = helpers.make_audience(consent_texts, eligible=20)
    # One batch a second between them, so a worker spends most of its time holding a claimed batch.
    env = helpers.worker_env(
        smtp_server.url, DISPATCH_BATCH_SIZE=BATCH, SEND_RATE_PER_SECOND=BATCH, DISPATCH_LEASE_SECONDS=2
    )
    workers = [start_celery_worker(**env), start_celery_worker(**env)]
    logs = lambda: "\n".join(w.log() for w in workers)  # noqa: E731
    campaign = helpers.start_campaign(audience)

    def mid_campaign() -> bool:
        return (
            helpers.count(campaign, Delivery.Status.SENT) >= BATCH
            and helpers.count(campaign, Delivery.Status.CLAIMED) > 0
        )

    # Held from before the kill: however fast the survivors go, the campaign cannot finish
    # before this recipient withdraws, during the fault.
    with guarantees.withdrawal_during_fault(campaign, audience) as leaver:
        helpers.wait_until(mid_campaign, timeout=20, what="a batch sent and another claimed", log=logs)
        if killed == "one worker":
            kill(workers[0])
        else:
            for worker in list(workers):
                kill(worker)
    if killed == "all workers":
        workers += [start_celery_worker(**env), start_celery_worker(**env)]
    guarantees.wait_until_finished(campaign, log=logs)

    guarantees.check(
        fault=f"SIGKILL {killed} mid-campaign",
        campaign=campaign,
        audience=audience,
        received=[rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos],
        batch=BATCH,
        withdrawn=[leaver],
    )

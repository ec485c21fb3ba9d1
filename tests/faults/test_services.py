"""The services under the workers failing: Redis restarted while a campaign sends, and
PostgreSQL dropping the workers' connections mid-batch."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.db import connection

from marketing.models import Delivery
from tests.conftest import SMTPServer, WorkerProcess, require_service
from tests.e2e import campaign_helpers as helpers
from tests.faults import guarantees
from tests.faults.conftest import RedisProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BATCH = 5


def mid_campaign(campaign) -> Callable[[], bool]:
    def check() -> bool:
        return (
            helpers.count(campaign, Delivery.Status.SENT) >= BATCH
            and helpers.count(campaign, Delivery.Status.CLAIMED) > 0
        )

    return check


def test_redis_restarted_while_a_campaign_sends(
    consent_texts,
    private_redis: RedisProcess,
    smtp_server: SMTPServer,
    start_celery_worker: Callable[..., WorkerProcess],
):
    audience = helpers.make_audience(consent_texts, eligible=20)
    # Redis is the broker and the cache the throttle counts in. A long lease: a batch the
    # outage stranded would only come back after the test's patience ran out.
    worker = start_celery_worker(
        **helpers.worker_env(
            smtp_server.url,
            DISPATCH_BATCH_SIZE=BATCH,
            SEND_RATE_PER_SECOND=BATCH,
            DISPATCH_LEASE_SECONDS=120,
            CELERY_BROKER_URL=private_redis.url(0),
            CACHE_URL=private_redis.url(1),
        )
    )
    campaign = helpers.start_campaign(audience)
    helpers.wait_until(
        mid_campaign(campaign), timeout=20, what="a batch sent, another claimed", log=worker.log
    )

    private_redis.crash()
    leaver = guarantees.withdraw_a_queued(campaign, audience)
    time.sleep(2)
    private_redis.start()
    guarantees.wait_until_finished(campaign, log=worker.log, timeout=40)

    guarantees.check(
        fault="Redis (broker and cache) restarted",
        campaign=campaign,
        audience=audience,
        received=[rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos],
        batch=BATCH,
        withdrawn=[leaver],
    )


def drop_other_connections() -> int:
    """End every connection to the test database but this process's own: the workers'."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def test_postgresql_connections_dropped_mid_batch(
    consent_texts, settings, smtp_server: SMTPServer, start_celery_worker: Callable[..., WorkerProcess]
):
    if connection.vendor != "postgresql":
        require_service("PostgreSQL", "dropping the workers' connections is a PostgreSQL fault")
    audience = helpers.make_audience(consent_texts, eligible=20)
    # One runner and no sweep: the run must come back by itself, not wait for the scheduler.
    settings.DISPATCH_RUNNERS = 1  # queued by this process when the campaign starts
    worker = start_celery_worker(
        **helpers.worker_env(
            smtp_server.url,
            DISPATCH_BATCH_SIZE=BATCH,
            SEND_RATE_PER_SECOND=BATCH,
            DISPATCH_LEASE_SECONDS=2,
            DISPATCH_RUNNERS=1,
        )
    )
    campaign = helpers.start_campaign(audience)
    helpers.wait_until(
        mid_campaign(campaign), timeout=20, what="a batch sent, another claimed", log=worker.log
    )

    assert drop_other_connections() >= 1
    leaver = guarantees.withdraw_a_queued(campaign, audience)
    guarantees.wait_until_finished(campaign, log=worker.log, sweep=False)

    guarantees.check(
        fault="PostgreSQL connections dropped mid-batch",
        campaign=campaign,
        audience=audience,
        received=[rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos],
        batch=BATCH,
        withdrawn=[leaver],
    )

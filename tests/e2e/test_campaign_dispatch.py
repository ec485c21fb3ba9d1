"""Campaign dispatch end to end: a real Celery worker, the run's database and broker, real delivery.

Nothing in the sending path is mocked. The test process snapshots the audience and queues
the run; separate worker processes claim batches, re-check consent and send either over
SMTP to a local aiosmtpd server or through anymail's real Postmark backend to a local
server that speaks Postmark's API (``provider_server``). The checks read what arrived there.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest

from marketing.models import Campaign, Delivery
from tests.e2e import campaign_helpers as helpers
from tests.e2e.provider_server import PostmarkServer, serve

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "test-token"  # the local provider's server token


@pytest.fixture
def provider() -> Iterator[PostmarkServer]:
    yield from serve(token=TOKEN)


def part(message, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))
    assert body is not None, f"no text/{subtype} part"
    return str(body.get_content())


def test_a_campaign_over_smtp_reaches_exactly_the_eligible_once(
    consent_texts, smtp_server, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=30)
    worker = start_celery_worker(**helpers.worker_env(smtp_server.url, DISPATCH_BATCH_SIZE=7))

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    received = Counter(rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos)
    assert set(received) == audience.eligible_emails
    assert set(received.values()) == {1}
    counts = (campaign.recipients_count, campaign.sent_count, campaign.failed_count, campaign.skipped_count)
    assert counts == (30, 30, 0, 0)
    assert set(helpers.statuses(campaign).values()) == {Delivery.Status.SENT}

    by_address = {mail.rcpt_tos[0]: mail.message for mail in smtp_server.messages}
    one_click: dict[int, str] = {}
    for subscriber in audience.eligible:
        message = by_address[subscriber.email]
        assert message["To"] == subscriber.email or subscriber.email in message["To"]
        assert message.is_multipart()
        one_click[subscriber.pk] = helpers.check_email(
            subscriber=subscriber,
            audience=audience,
            subject=str(message["Subject"]),
            text=part(message, "plain"),
            html=part(message, "html"),
            header=lambda name, m=message: None if m[name] is None else str(m[name]),
        )
    leaver = audience.eligible[-1]
    helpers.check_one_click_withdraws(one_click[leaver.pk], leaver, audience.purpose)


def test_a_campaign_through_a_provider_api_records_its_message_ids(
    consent_texts, provider, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=30)
    worker = start_celery_worker(**helpers.worker_env(provider.email_url, DISPATCH_BATCH_SIZE=7))

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    received = Counter(m.address for m in provider.messages)
    assert set(received) == audience.eligible_emails
    assert set(received.values()) == {1}
    assert campaign.sent_count == 30
    deliveries = Delivery.objects.filter(campaign=campaign)
    ids = dict(deliveries.values_list("subscriber__email", "provider_message_id"))
    assert ids == {m.address: m.message_id for m in provider.messages}

    by_address = {m.address: m for m in provider.messages}
    one_click: dict[int, str] = {}
    for subscriber in audience.eligible:
        message = by_address[subscriber.email]
        one_click[subscriber.pk] = helpers.check_email(
            subscriber=subscriber,
            audience=audience,
            subject=message.subject,
            text=message.text_body,
            html=message.html_body,
            header=message.header,
        )
    leaver = audience.eligible[0]
    helpers.check_one_click_withdraws(one_click[leaver.pk], leaver, audience.purpose)


def test_consent_withdrawn_while_sending_stops_that_recipients_email(
    consent_texts, smtp_server, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=30)
    # Two batches of 5 a second: about three seconds for the campaign.
    worker = start_celery_worker(
        **helpers.worker_env(smtp_server.url, DISPATCH_BATCH_SIZE=5, SEND_RATE_PER_SECOND=10)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until(
        lambda: helpers.count(campaign, Delivery.Status.SENT) >= 5,
        timeout=15,
        what="a first batch",
        log=worker.log,
    )
    queued = Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED)
    last_queued = queued.select_related("subscriber").order_by("-id").first()
    assert last_queued is not None, "the campaign finished before the withdrawal could be tested"
    leaver = last_queued.subscriber
    helpers.withdraw(leaver, audience.purpose)
    helpers.wait_until_sent(campaign, log=worker.log)

    received = Counter(rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos)
    assert leaver.email not in received
    assert set(received) == audience.eligible_emails - {leaver.email}
    assert set(received.values()) == {1}
    last_queued.refresh_from_db()
    assert last_queued.status == Delivery.Status.SKIPPED
    assert (campaign.sent_count, campaign.skipped_count, campaign.failed_count) == (29, 1, 0)


def test_a_campaign_resumes_and_finishes_after_its_worker_is_killed(
    consent_texts, smtp_server, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=30)
    batch = 5
    # One batch a second, so the worker spends most of its time holding a claimed batch.
    first = start_celery_worker(
        **helpers.worker_env(smtp_server.url, DISPATCH_BATCH_SIZE=batch, SEND_RATE_PER_SECOND=batch)
    )
    campaign = helpers.start_campaign(audience)

    def mid_campaign() -> bool:
        return (
            helpers.count(campaign, Delivery.Status.SENT) >= 2 * batch
            and helpers.count(campaign, Delivery.Status.CLAIMED) > 0
        )

    helpers.wait_until(mid_campaign, timeout=15, what="two batches sent and a third claimed", log=first.log)
    os.kill(first.process.pid, signal.SIGKILL)  # --pool=solo: the worker is this one process
    first.process.wait(timeout=10)
    assert helpers.count(campaign, Delivery.Status.CLAIMED) > 0  # the batch it died holding

    second = start_celery_worker(
        **helpers.worker_env(smtp_server.url, DISPATCH_BATCH_SIZE=batch, DISPATCH_LEASE_SECONDS=2)
    )
    helpers.wait_until_sent(campaign, log=lambda: first.log() + second.log(), sweep=True)

    received = Counter(rcpt for mail in smtp_server.messages for rcpt in mail.rcpt_tos)
    assert set(received) == audience.eligible_emails
    assert sum(n - 1 for n in received.values()) <= batch
    assert set(helpers.statuses(campaign).values()) == {Delivery.Status.SENT}
    assert campaign.sent_count == 30


@pytest.mark.parametrize("fault", ["429", "500"])
def test_a_provider_that_throttles_or_fails_is_retried_until_everyone_has_it_once(
    fault, consent_texts, provider, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=10)
    if fault == "429":
        provider.throttle(1, retry_after=1)
    else:
        provider.fail(2)
    worker = start_celery_worker(
        **helpers.worker_env(provider.email_url, DISPATCH_BATCH_SIZE=5, DISPATCH_RETRY_BASE_SECONDS=0.2)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log, sweep=True)

    received = Counter(m.address for m in provider.messages)
    assert set(received) == audience.eligible_emails
    assert set(received.values()) == {1}
    assert (campaign.sent_count, campaign.failed_count) == (10, 0)
    refused = [r for r in provider.requests if r.status != 200]
    assert [r.status for r in refused] == ([429] if fault == "429" else [500, 500])
    # The recipients of the refused calls were put back with a time to retry, then sent.
    retried = Delivery.objects.filter(campaign=campaign, retry_after__isnull=False)
    retried_addresses = {a for r in refused for a in r.addresses}
    assert retried_addresses <= set(retried.values_list("subscriber__email", flat=True))
    assert all(d.attempts >= 2 and d.status == Delivery.Status.SENT for d in retried)
    if fault == "429":
        # Retry-After: 1 was honoured: nothing was sent until it had passed.
        assert min(m.received_at for m in provider.messages) >= refused[0].at + 1.0


def test_recipients_the_provider_refuses_fail_without_retries(consent_texts, provider, start_celery_worker):
    audience = helpers.make_audience(consent_texts, eligible=10)
    refused = {audience.eligible[2].email, audience.eligible[7].email}
    provider.reject(*refused)
    worker = start_celery_worker(
        **helpers.worker_env(provider.email_url, DISPATCH_BATCH_SIZE=5, DISPATCH_RETRY_BASE_SECONDS=0.2)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    assert {m.address for m in provider.messages} == audience.eligible_emails - refused
    calls = Counter(a for r in provider.requests for a in r.addresses)
    assert all(calls[address] == 1 for address in refused), calls
    assert (campaign.status, campaign.sent_count, campaign.failed_count) == (Campaign.Status.SENT, 8, 2)
    failed = Delivery.objects.filter(campaign=campaign, status=Delivery.Status.FAILED).select_related(
        "subscriber"
    )
    assert {d.subscriber.email for d in failed} == refused
    for delivery in failed:
        assert delivery.attempts == 1
        assert delivery.retry_after is None
        assert delivery.provider_message_id == ""
        # The provider's own reason, so staff can tell a bounce from a typo.
        assert "inactive" in delivery.error.lower(), delivery.error

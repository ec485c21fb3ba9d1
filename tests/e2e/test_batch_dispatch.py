"""Batch sending end to end: a real worker, anymail's real Mailgun backend, one API call per batch.

The worker sends through anymail's Mailgun backend to a local server that speaks Mailgun's
send API (``mailgun_server``) and expands every recipient's copy as Mailgun would, so the
checks read what each recipient would receive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from marketing.models import Delivery
from subscribers.models import Subscriber
from tests.e2e import campaign_helpers as helpers
from tests.e2e.mailgun_server import MailgunServer, serve

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

API_KEY = "key-test"
DOMAIN = "mg.example.com"
# One word, so it is all of the first name; it must arrive escaped in HTML, as typed in text.
AWKWARD_NAME = 'Tom&<b>"Jerry"</b>'


@pytest.fixture
def mailgun() -> Iterator[MailgunServer]:
    yield from serve(api_key=API_KEY, domain=DOMAIN)


def test_a_batch_is_one_api_call_and_every_copy_is_personal(consent_texts, mailgun, start_celery_worker):
    audience = helpers.make_audience(consent_texts, eligible=25)
    awkward = audience.eligible[4]
    Subscriber.objects.filter(pk=awkward.pk).update(name=AWKWARD_NAME)
    awkward.refresh_from_db()
    worker = start_celery_worker(**helpers.worker_env(mailgun.email_url, DISPATCH_BATCH_SIZE=10))

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    # 25 recipients in batches of 10: three calls, everyone in exactly one of them.
    assert [len(call.addresses) for call in mailgun.calls] == [10, 10, 5]
    assert {call.status for call in mailgun.calls} == {200}
    received = Counter(m.address for m in mailgun.messages)
    assert set(received) == audience.eligible_emails
    assert set(received.values()) == {1}
    assert not audience.excluded_emails & {a for call in mailgun.calls for a in call.addresses}
    assert (campaign.sent_count, campaign.failed_count, campaign.skipped_count) == (25, 0, 0)

    # Each Delivery has the id Mailgun gave the call that carried it, and its own id went along.
    deliveries = {
        d.subscriber.email: d for d in Delivery.objects.filter(campaign=campaign).select_related("subscriber")
    }
    call_of = {address: call for call in mailgun.calls for address in call.addresses}
    for address, delivery in deliveries.items():
        assert delivery.status == Delivery.Status.SENT
        assert delivery.provider_message_id == call_of[address].message_id
    by_address = {m.address: m for m in mailgun.messages}
    for address, delivery in deliveries.items():
        assert by_address[address].variables["delivery_id"] == str(delivery.pk)
        assert by_address[address].variables["campaign_id"] == str(campaign.pk)

    one_click: dict[int, str] = {}
    for subscriber in audience.eligible:
        message = by_address[subscriber.email or ""]
        assert message.header("To") == subscriber.email  # nobody sees the other recipients
        if subscriber == awkward:
            assert "Hello Tom&amp;&lt;b&gt;&quot;Jerry&quot;&lt;/b&gt;!" in message.html
            assert f"Hello {AWKWARD_NAME}!" in message.text
            assert AWKWARD_NAME not in message.html
            one_click[subscriber.pk], _ = helpers.unsubscribe_urls(message.header("List-Unsubscribe"))
            continue
        one_click[subscriber.pk] = helpers.check_email(
            subscriber=subscriber,
            audience=audience,
            subject=message.subject,
            text=message.text,
            html=message.html,
            header=message.header,
        )
        assert "%recipient." not in message.html + message.text + str(message.headers)
    # Everyone's link is their own.
    assert len(set(one_click.values())) == 25
    assert one_click[awkward.pk] in by_address[awkward.email or ""].text
    leaver = audience.eligible[17]
    helpers.check_one_click_withdraws(one_click[leaver.pk], leaver, audience.purpose)


def test_a_throttled_batch_is_retried_whole_and_sent_once(consent_texts, mailgun, start_celery_worker):
    audience = helpers.make_audience(consent_texts, eligible=10)
    mailgun.throttle(1, retry_after=1)
    worker = start_celery_worker(
        **helpers.worker_env(mailgun.email_url, DISPATCH_BATCH_SIZE=5, DISPATCH_RETRY_BASE_SECONDS=0.2)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log, sweep=True)

    assert [call.status for call in mailgun.calls].count(429) == 1
    received = Counter(m.address for m in mailgun.messages)
    assert set(received) == audience.eligible_emails
    assert set(received.values()) == {1}
    refused = next(call for call in mailgun.calls if call.status == 429)
    retried = Delivery.objects.filter(campaign=campaign, retry_after__isnull=False)
    assert set(refused.addresses) == set(retried.values_list("subscriber__email", flat=True))
    assert all(d.attempts == 2 and d.status == Delivery.Status.SENT for d in retried)
    # Retry-After: 1 was honoured.
    resent = [
        call for call in mailgun.calls if call.status == 200 and set(call.addresses) == set(refused.addresses)
    ]
    assert resent and resent[0].at >= refused.at + 1.0

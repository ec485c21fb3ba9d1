"""Open and click tracking end to end: only subscribers who agreed get tracked messages.

A real worker sends the campaign over SMTP (aiosmtpd) and through anymail's real Mailgun
backend (a local server speaking its batch API). The tracked recipient's pixel and links are
then fetched from ``live_server`` as a mail client would: the open and the click are noted
and the click leads to the marketer's address. Everyone else's copy is the campaign as
written. The provider is told, on every call, not to add its own tracking.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from html import unescape

import pytest

from marketing.models import Delivery, DeliveryEvent
from subscribers import services
from subscribers.models import Channel, Subscriber
from tests.e2e import campaign_helpers as helpers
from tests.e2e.mailgun_server import MailgunServer, serve

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOUR = "https://example.com/tour"  # the one link of helpers.BODY
PIXEL = re.compile(r'<img src="([^"]+/open\.gif)"')


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # answer the 302 itself, as the test reads its Location


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:  # the 302, unfollowed
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def mailgun() -> Iterator[MailgunServer]:
    yield from serve(api_key="key-test", domain="mg.example.com")


def agree_to_tracking(consent_texts, subscribers: list[Subscriber]) -> None:
    purpose = consent_texts["email-tracking"].purpose
    for subscriber in subscribers:
        services.consent_opt_in(
            subscriber=subscriber,
            purpose=purpose,
            channel=Channel.EMAIL,
            consent_text_id=consent_texts["email-tracking"].pk,
            evidence=helpers.PREFERENCES,
        )


def events(delivery: Delivery) -> list[tuple[str, str]]:
    rows = DeliveryEvent.objects.filter(delivery=delivery).order_by("pk")
    return list(rows.values_list("event_type", "description"))


def check_tracked(html: str, text: str, site: str, delivery: Delivery, log: Callable[[], str]) -> None:
    """Pixel and links on this delivery's tracking base; fetching them notes an open and a click."""
    assert f'href="{TOUR}"' not in html and f"({TOUR})" not in text
    [pixel] = PIXEL.findall(html)
    base = unescape(pixel).removesuffix("/open.gif")
    assert base.startswith(f"{site}/t/")
    links = [unescape(h) for h in re.findall(r'href="([^"]+)"', html) if unescape(h).startswith(base)]
    assert links == [f"{base}/1/"]
    assert f"]({base}/1/)" in text
    assert events(delivery) == []

    status, headers, body = fetch(unescape(pixel))
    assert (status, headers["Content-Type"], body[:6]) == (200, "image/gif", b"GIF89a")
    status, headers, _ = fetch(links[0])
    assert (status, headers["Location"]) == (302, TOUR)
    # Stored at once, matched to the delivery by the worker that processes provider events.
    expected = [("opened", ""), ("clicked", "link 1")]
    helpers.wait_until(lambda: events(delivery) == expected, timeout=20, what="open and click", log=log)


def check_untracked(html: str, text: str, delivery: Delivery) -> None:
    assert f'href="{TOUR}"' in html and f"({TOUR})" in text
    assert "/t/" not in html + text and "open.gif" not in html
    assert not delivery.tracked


def test_over_smtp_only_those_who_agreed_get_pixel_and_tracked_links(
    consent_texts, smtp_server, live_server, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=6)
    agreed = audience.eligible[1::2]
    agree_to_tracking(consent_texts, agreed)
    worker = start_celery_worker(
        **helpers.worker_env(smtp_server.url, SITE_URL=live_server.url, DISPATCH_BATCH_SIZE=4)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    by_address = {mail.rcpt_tos[0]: mail.message for mail in smtp_server.messages}
    assert set(by_address) == audience.eligible_emails
    deliveries = {d.subscriber_id: d for d in Delivery.objects.filter(campaign=campaign)}
    for subscriber in audience.eligible:
        message = by_address[subscriber.email]
        html = str(message.get_body(preferencelist=("html",)).get_content())
        text = str(message.get_body(preferencelist=("plain",)).get_content())
        delivery = deliveries[subscriber.pk]
        assert f"Hello {subscriber.name}!" in text
        if subscriber in agreed:
            assert delivery.tracked
            check_tracked(html, text, live_server.url, delivery, worker.log)
        else:
            check_untracked(html, text, delivery)
    assert DeliveryEvent.objects.count() == 2 * len(agreed)


def test_through_the_provider_two_calls_per_batch_and_never_the_providers_tracking(
    consent_texts, mailgun, live_server, start_celery_worker
):
    audience = helpers.make_audience(consent_texts, eligible=5)
    agreed = audience.eligible[:2]
    agree_to_tracking(consent_texts, agreed)
    worker = start_celery_worker(
        **helpers.worker_env(mailgun.email_url, SITE_URL=live_server.url, DISPATCH_BATCH_SIZE=10)
    )

    campaign = helpers.start_campaign(audience)
    helpers.wait_until_sent(campaign, log=worker.log)

    # One batch, two bodies: the tracked copy to those who agreed, the plain one to the rest.
    assert sorted(len(call.addresses) for call in mailgun.calls) == [2, 3]
    for call in mailgun.calls:
        assert (call.get("o:tracking"), call.get("o:tracking-opens"), call.get("o:tracking-clicks")) in (
            (None, "no", "no"),
            ("no", "no", "no"),
        )
    by_address = {m.address: m for m in mailgun.messages}
    assert set(by_address) == audience.eligible_emails
    deliveries = {d.subscriber_id: d for d in Delivery.objects.filter(campaign=campaign)}
    for subscriber in audience.eligible:
        message = by_address[subscriber.email or ""]
        assert "%recipient." not in message.html + message.text
        delivery = deliveries[subscriber.pk]
        if subscriber in agreed:
            assert delivery.tracked
            check_tracked(message.html, message.text, live_server.url, delivery, worker.log)
        else:
            check_untracked(message.html, message.text, delivery)

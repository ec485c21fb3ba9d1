"""Unsubscribing from a campaign email: one-click (RFC 8058), the page with one button, and links."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import signing
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from subscribers import links, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, Purpose, Subscriber

pytestmark = pytest.mark.django_db

GMAIL_UA = "Mozilla/5.0 (compatible; Google-Unsubscribe)"


@pytest.fixture
def client() -> Client:
    # Mail clients send no CSRF token; the view must not need one.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def newsletter() -> Purpose:
    return Purpose.objects.get(slug="newsletter")


@pytest.fixture
def ada(confirmed_subscriber, consent_texts) -> Subscriber:
    """Ada: newsletter by email (the fixture), plus promotions by email and the newsletter by
    post confirmed, and product information by email still awaiting confirmation."""
    evidence = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7")
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        choices=[
            services.ConsentChoice(consent_text=consent_texts["promotions"], channel=Channel.EMAIL),
            services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.POSTAL),
        ],
        evidence=evidence,
    )
    assert outcome.request is not None
    services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)
    product = next(slug for slug in consent_texts if slug not in ("newsletter", "promotions"))
    services.subscriber_sign_up(
        email="ada@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts[product], channel=Channel.EMAIL)],
        evidence=evidence,
    )
    return confirmed_subscriber


def unsubscribe_url(subscriber: Subscriber, purpose: Purpose) -> str:
    return reverse("subscribers:unsubscribe", args=[links.make("unsubscribe", subscriber.pk, purpose.pk)])


def status(subscriber: Subscriber, slug: str, channel: str = Channel.EMAIL) -> str:
    return ConsentState.objects.get(subscriber=subscriber, purpose__slug=slug, channel=channel).status


def withdrawals(subscriber: Subscriber) -> list[ConsentEvent]:
    return list(
        ConsentEvent.objects.filter(subscriber=subscriber, kind=ConsentEvent.Kind.WITHDRAWN)
        .select_related("evidence", "purpose")
        .order_by("seq")
    )


def one_click(client: Client, url: str):
    """The POST exactly as Gmail sends it (RFC 8058 §3.2): no cookies, a form-encoded body."""
    return client.post(
        url,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        HTTP_USER_AGENT=GMAIL_UA,
        REMOTE_ADDR="198.51.100.20",
    )


def past_token(monkeypatch, days: float, make) -> str:
    """A token issued ``days`` ago: the signer's clock is moved back while it is made."""
    issued = int(time.time() - days * 86400)
    with monkeypatch.context() as patch:
        patch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued))
        return make()


def assert_bad_link_page(response) -> None:
    assert response.status_code == 400
    html = response.content.decode()
    assert "We couldn't read this link" in html
    assert "Nothing has been changed." in html
    assert reverse("subscribers:signup") in html
    assert "mailto:" in html


# --- One-click (RFC 8058) ---------------------------------------------------------------


def test_one_click_post_as_gmail_sends_it_withdraws_at_once(client, confirmed_subscriber, newsletter):
    url = unsubscribe_url(confirmed_subscriber, newsletter)
    response = one_click(client, url)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "won't get Newsletter emails" in response.content.decode()
    assert not response.cookies  # no session, no CSRF cookie
    assert status(confirmed_subscriber, "newsletter") == ConsentState.Status.WITHDRAWN
    (event,) = withdrawals(confirmed_subscriber)
    assert (event.purpose.slug, event.channel) == ("newsletter", Channel.EMAIL)
    assert (event.source, event.actor) == (
        ConsentEvent.Source.UNSUBSCRIBE_LINK,
        ConsentEvent.Actor.SUBSCRIBER,
    )
    assert event.evidence.submitted == {"one_click": True}
    assert event.evidence.ip_address == "198.51.100.20"
    assert event.evidence.user_agent == GMAIL_UA
    assert event.evidence.page_url == "http://testserver/u/<token>/"


def test_one_click_multipart_as_yahoo_may_send_it(client, confirmed_subscriber, newsletter):
    body = (
        "--yahoo-boundary-0001\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
        "\r\n"
        "One-Click\r\n"
        "--yahoo-boundary-0001--\r\n"
    )
    response = client.post(
        unsubscribe_url(confirmed_subscriber, newsletter),
        data=body,
        content_type="multipart/form-data; boundary=yahoo-boundary-0001",
        HTTP_USER_AGENT="YahooMailProxy",
    )
    assert response.status_code == 200
    assert status(confirmed_subscriber, "newsletter") == ConsentState.Status.WITHDRAWN
    assert withdrawals(confirmed_subscriber)[0].evidence.submitted == {"one_click": True}


def test_one_click_twice_answers_the_same_and_records_once(client, confirmed_subscriber, newsletter):
    url = unsubscribe_url(confirmed_subscriber, newsletter)
    first = one_click(client, url)
    second = one_click(client, url)
    assert (first.status_code, second.status_code) == (200, 200)
    assert len(withdrawals(confirmed_subscriber)) == 1
    call_command("verify_ledger")


def test_one_click_withdraws_only_that_purpose_by_email(client, ada, newsletter):
    one_click(client, unsubscribe_url(ada, newsletter))
    assert status(ada, "newsletter") == ConsentState.Status.WITHDRAWN
    assert status(ada, "promotions") == ConsentState.Status.ACTIVE
    assert status(ada, "newsletter", Channel.POSTAL) == ConsentState.Status.ACTIVE


# --- The page with one button -----------------------------------------------------------


def test_a_link_scanners_get_changes_nothing(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    for _ in range(3):
        response = client.get(url, HTTP_USER_AGENT="SafeLinks/1.0")
        assert response.status_code == 200
    assert client.head(url).status_code == 200
    html = response.content.decode()
    assert 'method="post"' in html
    assert f'action="{url}"' in html
    assert 'name="confirm" value="1"' in html
    assert 'name="everything"' in html
    assert 'maxlength="500"' in html
    assert "Unsubscribe from Newsletter emails" in html
    assert reverse("subscribers:preferences", args=["x"]).rsplit("x/", 1)[0] in html
    assert response["Cache-Control"].startswith("max-age=0")
    assert not withdrawals(ada)
    assert status(ada, "newsletter") == ConsentState.Status.ACTIVE


def test_the_button_withdraws_with_its_own_evidence(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    response = client.post(
        url,
        {"confirm": "1", "reason": "  Too many emails.  "},
        HTTP_USER_AGENT="Firefox/131",
        REMOTE_ADDR="192.0.2.44",
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "You won't get Newsletter emails any more." in html
    assert reverse("subscribers:signup") in html
    assert "Sign up again" in html
    (event,) = withdrawals(ada)
    assert (event.purpose.slug, event.channel, event.source) == ("newsletter", "email", "unsubscribe_link")
    assert event.evidence.submitted == {"confirm": True, "everything": False, "reason": "Too many emails."}
    assert (event.evidence.ip_address, event.evidence.user_agent) == ("192.0.2.44", "Firefox/131")
    assert status(ada, "promotions") == ConsentState.Status.ACTIVE
    call_command("verify_ledger")


def test_a_long_reason_is_cut_to_500_characters(client, confirmed_subscriber, newsletter):
    client.post(unsubscribe_url(confirmed_subscriber, newsletter), {"confirm": "1", "reason": "x" * 2000})
    assert withdrawals(confirmed_subscriber)[0].evidence.submitted["reason"] == "x" * 500


def test_leave_everything_withdraws_every_consent(client, ada, newsletter):
    response = client.post(unsubscribe_url(ada, newsletter), {"confirm": "1", "everything": "1"})
    assert response.status_code == 200
    assert set(ConsentState.objects.filter(subscriber=ada).values_list("status", flat=True)) == {
        ConsentState.Status.WITHDRAWN
    }
    events = withdrawals(ada)
    assert len(events) == 4  # newsletter by email and post, promotions, the pending one
    assert {e.evidence.submitted["everything"] for e in events} == {True}
    html = response.content.decode()
    assert "You won't get Promotions emails any more." in html
    assert "You won't get Newsletter by post any more." in html
    call_command("verify_ledger")


def test_the_button_after_one_click_says_so_and_records_nothing(client, confirmed_subscriber, newsletter):
    url = unsubscribe_url(confirmed_subscriber, newsletter)
    one_click(client, url)
    page = client.get(url)
    assert "already unsubscribed" in page.content.decode()
    response = client.post(url, {"confirm": "1"})
    assert response.status_code == 200
    assert "already unsubscribed" in response.content.decode()
    assert len(withdrawals(confirmed_subscriber)) == 1


def test_a_post_without_one_click_or_confirm_changes_nothing(client, confirmed_subscriber, newsletter):
    response = client.post(unsubscribe_url(confirmed_subscriber, newsletter), {"List-Unsubscribe": "maybe"})
    assert response.status_code == 200
    assert not withdrawals(confirmed_subscriber)


# --- Links that cannot be used ----------------------------------------------------------


def bad_tokens(subscriber: Subscriber, purpose: Purpose, monkeypatch) -> dict[str, str]:
    good = links.make("unsubscribe", subscriber.pk, purpose.pk)
    value, timestamp, signature = good.split(":")
    other_id = signing.b62_encode(subscriber.pk + 1) + "." + signing.b62_encode(purpose.pk)
    return {
        "forged": "made-up-token",
        "forged with our format": f"{value}:{timestamp}:{'A' * len(signature)}",
        "altered id": f"{other_id}:{timestamp}:{signature}",
        "altered signature": f"{value}:{timestamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        "altered time": f"{value}:{signing.b62_encode(int(time.time()) + 3600)}:{signature}",
        "truncated": good[:-5],
        "wrong scope": links.make("preferences", subscriber.pk),
        "expired": past_token(monkeypatch, 400, lambda: links.make("unsubscribe", subscriber.pk, purpose.pk)),
        "unknown subscriber": links.make("unsubscribe", subscriber.pk + 1000, purpose.pk),
        "unknown purpose": links.make("unsubscribe", subscriber.pk, purpose.pk + 1000),
        "too long": good + "x" * 300,
    }


def test_bad_links_get_the_friendly_page_and_change_nothing(client, ada, newsletter, monkeypatch):
    for name, token in bad_tokens(ada, newsletter, monkeypatch).items():
        url = reverse("subscribers:unsubscribe", args=[token])
        assert_bad_link_page(client.get(url))
        assert_bad_link_page(one_click(client, url))
        assert_bad_link_page(client.post(url, {"confirm": "1", "everything": "1"}))
        assert not withdrawals(ada), name
    call_command("verify_ledger")


def test_an_erased_subscribers_link_gets_the_friendly_page(client, confirmed_subscriber, newsletter):
    url = unsubscribe_url(confirmed_subscriber, newsletter)
    Subscriber.objects.filter(pk=confirmed_subscriber.pk).update(email=None)  # as an erasure leaves it
    assert_bad_link_page(client.get(url))
    assert_bad_link_page(one_click(client, url))
    assert not withdrawals(confirmed_subscriber)


def test_a_link_two_months_old_still_unsubscribes(client, confirmed_subscriber, newsletter, monkeypatch):
    # CAN-SPAM: 30 days after sending at least; we promise 60.
    token = past_token(
        monkeypatch, 61, lambda: links.make("unsubscribe", confirmed_subscriber.pk, newsletter.pk)
    )
    assert one_click(client, reverse("subscribers:unsubscribe", args=[token])).status_code == 200
    assert status(confirmed_subscriber, "newsletter") == ConsentState.Status.WITHDRAWN


# --- The tokens themselves ---------------------------------------------------------------


def test_tokens_round_trip_and_are_short():
    token = links.make("unsubscribe", 123_456_789, 42)
    assert len(token) < 120
    claims = links.read("unsubscribe", token)
    assert claims is not None
    assert (claims.scope, claims.subscriber_id, claims.purpose_id) == ("unsubscribe", 123_456_789, 42)
    assert abs(claims.issued_at.timestamp() - time.time()) < 5
    prefs = links.read("preferences", links.make("preferences", 7))
    assert prefs is not None
    assert (prefs.subscriber_id, prefs.purpose_id) == (7, None)


def test_tokens_are_scoped():
    assert links.read("preferences", links.make("unsubscribe", 7, 1)) is None
    assert links.read("unsubscribe", links.make("preferences", 7)) is None
    with pytest.raises(ValueError):
        links.make("unsubscribe", 7)
    with pytest.raises(ValueError):
        links.make("preferences", 7, 1)


@pytest.mark.parametrize("token", ["", ":", "::", "a:b:c", "x" * 500, "é:ü:ß", "0:1:2", "-1.2:0:x", None, 5])
def test_reading_garbage_never_raises(token):
    assert links.read("unsubscribe", token) is None


def test_validity_follows_link_max_age_days(settings, monkeypatch):
    make = lambda: links.make("unsubscribe", 7, 1)  # noqa: E731
    old = past_token(monkeypatch, 100, make)
    assert links.read("unsubscribe", old) is not None  # default: 365 days
    settings.LINK_MAX_AGE_DAYS = 90
    assert links.read("unsubscribe", old) is None
    assert links.read("unsubscribe", past_token(monkeypatch, 89, make)) is not None
    settings.LINK_MAX_AGE_DAYS = 10  # never below the 60 days we promise
    assert links.link_max_age() == timedelta(days=60)
    assert links.read("unsubscribe", past_token(monkeypatch, 59, make)) is not None
    assert links.read("unsubscribe", old, max_age=timedelta(days=365)) is not None


def test_links_survive_a_key_rotation(settings):
    settings.SECRET_KEY = "old-key-" + "o" * 50
    token = links.make("unsubscribe", 7, 1)
    settings.SECRET_KEY = "new-key-" + "n" * 50
    settings.SECRET_KEY_FALLBACKS = []
    assert links.read("unsubscribe", token) is None
    settings.SECRET_KEY_FALLBACKS = ["old-key-" + "o" * 50]
    claims = links.read("unsubscribe", token)
    assert claims is not None
    assert claims.subscriber_id == 7

"""The public pages as a visitor meets them: signup, check your inbox, confirm."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscribers import tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, ConsentState, Subscriber
from tests.factories import publish_text

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("subscribers:signup")


def form_data(consent_texts, email="ada@example.org", **extra):
    text = consent_texts["newsletter"]
    return {"email": email, "name": "Ada", f"consent_{text.pk}_email": "on", **extra}


def confirm_url_from(message) -> str:
    found = re.search(r"https?://\S+/confirm/\S+/", message.body)
    assert found, message.body
    return found.group(0)


def test_page_shows_every_text_in_full_and_nothing_ticked(client, consent_texts):
    response = client.get(SIGNUP_URL)
    html = response.content.decode()
    assert response.status_code == 200
    for text in consent_texts.values():
        assert text.statement in html
        assert text.use in html
        assert text.retention in html
        assert text.withdrawal in html
    boxes = re.findall(r"<input[^>]*type=\"checkbox\"[^>]*>", html)
    assert len(boxes) == 7  # three purposes, email and post each, and tracking (email only)
    assert not [b for b in boxes if "checked" in b]


def test_signup_redirects_to_check_your_inbox_and_records_the_request(client, consent_texts, mailoutbox):
    response = client.post(
        SIGNUP_URL, form_data(consent_texts), HTTP_USER_AGENT="TestBrowser/1.0", REMOTE_ADDR="203.0.113.5"
    )
    assert response.status_code == 302
    assert response.url == reverse("subscribers:check_inbox")
    event = ConsentEvent.objects.get()
    assert (event.kind, event.source) == ("requested", "signup_page")
    assert (event.evidence.ip_address, event.evidence.user_agent) == ("203.0.113.5", "TestBrowser/1.0")
    assert event.evidence.submitted["choices"][0]["version"] == consent_texts["newsletter"].version
    assert len(mailoutbox) == 1
    assert "/confirm/" in mailoutbox[0].body


def test_same_answer_for_new_pending_and_subscribed_addresses(client, consent_texts, mailoutbox):
    first = client.post(SIGNUP_URL, form_data(consent_texts))
    client.post(confirm_url_from(mailoutbox[0]))
    again = client.post(SIGNUP_URL, form_data(consent_texts))
    stranger = client.post(SIGNUP_URL, form_data(consent_texts, email="new@example.org"))
    assert first.status_code == again.status_code == stranger.status_code == 302
    assert first.url == again.url == stranger.url
    page_known = client.get(again.url).content
    page_new = client.get(stranger.url).content
    assert page_known == page_new
    # The subscribed person hears about it by email instead.
    assert "already" in mailoutbox[1].body.lower()


def test_invalid_email_gets_a_field_error_and_nothing_is_stored(client, consent_texts):
    response = client.post(SIGNUP_URL, form_data(consent_texts, email="ada@@example"))
    assert response.status_code == 400
    assert "look like an email address" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_no_box_ticked_asks_for_a_choice(client, consent_texts):
    response = client.post(SIGNUP_URL, {"email": "ada@example.org"})
    assert response.status_code == 400
    assert "Tick at least one box" in response.content.decode()
    assert not ConsentEvent.objects.exists()


def test_postal_mail_needs_an_address(client, consent_texts):
    text = consent_texts["promotions"]
    response = client.post(SIGNUP_URL, {"email": "ada@example.org", f"consent_{text.pk}_postal": "on"})
    assert response.status_code == 400
    assert "Needed for mail by post" in response.content.decode()
    assert not ConsentEvent.objects.exists()


def test_outdated_form_asks_to_read_the_new_text(client, consent_texts):
    stale = form_data(consent_texts)
    publish_text(consent_texts["newsletter"].purpose, frequency="Every day.")
    response = client.post(SIGNUP_URL, stale)
    assert response.status_code == 400
    assert "changed since you opened this page" in response.content.decode()
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Ada.Lovelace+news@Example.ORG", "Ada.Lovelace+news@example.org"),
        # Non-ASCII local parts are refused (tests/fuzz/test_addresses.py); IDN domains are kept.
        ("juergen@Bücher.example", "juergen@bücher.example"),
        ("  ada@example.org ", "ada@example.org"),
    ],
)
def test_addresses_are_normalised_without_mangling(client, consent_texts, typed, stored):
    client.post(SIGNUP_URL, form_data(consent_texts, email=typed))
    assert Subscriber.objects.get().email == stored


def test_honeypot_looks_like_success_but_stores_nothing(client, consent_texts, mailoutbox):
    response = client.post(SIGNUP_URL, form_data(consent_texts, website="http://spam.example"))
    assert response.status_code == 302
    assert response.url == reverse("subscribers:check_inbox")
    assert not Subscriber.objects.exists()
    assert mailoutbox == []


def test_rate_limit_per_ip(client, consent_texts, settings):
    settings.SIGNUP_RATE_LIMIT = "3/h"
    for n in range(3):
        ok = client.post(
            SIGNUP_URL, form_data(consent_texts, email=f"p{n}@example.org"), REMOTE_ADDR="192.0.2.1"
        )
        assert ok.status_code == 302
    limited = client.post(
        SIGNUP_URL, form_data(consent_texts, email="p9@example.org"), REMOTE_ADDR="192.0.2.1"
    )
    assert limited.status_code == 429
    assert "try again" in limited.content.decode().lower()
    other_ip = client.post(
        SIGNUP_URL, form_data(consent_texts, email="p8@example.org"), REMOTE_ADDR="192.0.2.2"
    )
    assert other_ip.status_code == 302
    assert Subscriber.objects.count() == 4


def test_a_link_scanners_get_does_not_confirm(client, consent_texts, mailoutbox):
    client.post(SIGNUP_URL, form_data(consent_texts))
    url = confirm_url_from(mailoutbox[0])
    page = client.get(url, HTTP_USER_AGENT="SafeLinks scanner")
    assert page.status_code == 200
    assert "<form" in page.content.decode() and 'method="post"' in page.content.decode().lower()
    assert ConsentState.objects.get().status == ConsentState.Status.PENDING
    done = client.post(url, HTTP_USER_AGENT="Phone/1.0", REMOTE_ADDR="198.51.100.20")
    assert done.status_code == 200
    assert ConsentState.objects.get().status == ConsentState.Status.ACTIVE
    confirmed = ConsentEvent.objects.get(kind="confirmed")
    assert (confirmed.evidence.user_agent, confirmed.evidence.ip_address) == ("Phone/1.0", "198.51.100.20")


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "a" * 5000,
        "%00",
        tokens.confirmation_token("6f1c2f7e-31a5-4b44-9d57-2b8e2c9c1f00")[:-3] + "xyz",
    ],
)
def test_bad_or_altered_links_get_a_friendly_page(client, token):
    for method in (client.get, client.post):
        response = method(f"/confirm/{token}/")
        assert response.status_code in (400, 404)
        assert "couldn" in response.content.decode().lower()


def test_expired_link_gets_a_friendly_page_and_nothing_changes(client, consent_texts, mailoutbox):
    client.post(SIGNUP_URL, form_data(consent_texts))
    from django.utils import timezone

    ConfirmationRequest.objects.update(expires_at=timezone.now())
    url = confirm_url_from(mailoutbox[0])
    for method in (client.get, client.post):
        response = method(url)
        assert response.status_code == 410
        assert "expired" in response.content.decode().lower()
    assert ConsentState.objects.get().status == ConsentState.Status.PENDING
    assert not ConsentEvent.objects.filter(kind="confirmed").exists()


def test_staff_written_texts_are_shown_never_evaluated(client, consent_texts):
    purpose = consent_texts["newsletter"].purpose
    purpose.name = "News <b>&</b> {{ views }}"
    purpose.save()
    publish_text(purpose, use="We use {{ 7|add:1 }} and {% now 'Y' %} <script>alert(1)</script>")
    html = client.get(SIGNUP_URL).content.decode()
    assert "We use {{ 7|add:1 }} and {% now &#x27;Y&#x27; %} &lt;script&gt;" in html
    assert "News &lt;b&gt;&amp;&lt;/b&gt; {{ views }}" in html
    assert "<script>alert(1)" not in html

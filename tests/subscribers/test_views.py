"""The public pages as a visitor meets them: signup, check your inbox, confirm."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from subscribers import selectors, services, tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, ConsentState, Subscriber, Suppression
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
    ("reason", "why"),
    [
        (Suppression.Reason.COMPLAINT, "reported as spam"),
        (Suppression.Reason.HARD_BOUNCE, "came back as undeliverable"),
    ],
)
def test_confirming_an_address_we_no_longer_mail_says_so(client, consent_texts, mailoutbox, reason, why):
    Suppression.objects.create(email_hash=services.address_hash("ada@example.org"), reason=reason)
    client.post(SIGNUP_URL, form_data(consent_texts))
    done = client.post(confirm_url_from(mailoutbox[0]))
    html = done.content.decode()
    assert done.status_code == 200
    assert "We don't send anything to this address at the moment" in html
    assert why in html
    # The choice is recorded as made; the suppression still decides that nothing is sent.
    assert ConsentState.objects.get().status == ConsentState.Status.ACTIVE
    assert not selectors.sendable_consents(purpose_id=consent_texts["newsletter"].purpose_id).exists()


def test_confirming_an_address_we_mail_shows_no_warning(client, consent_texts, mailoutbox):
    client.post(SIGNUP_URL, form_data(consent_texts))
    html = client.post(confirm_url_from(mailoutbox[0])).content.decode()
    assert "You're subscribed" in html or "You&#x27;re subscribed" in html
    assert "suppression-notice" not in html


def test_a_confirmation_post_reads_the_request_once(
    client, consent_texts, mailoutbox, django_assert_num_queries
):
    client.post(SIGNUP_URL, form_data(consent_texts))
    url = confirm_url_from(mailoutbox[0])
    # In one transaction (a savepoint here): the request, the subscriber, their states and
    # what was asked, locked or read; the confirmed event, its evidence, the chain head, the
    # state, any erasure suppression, the name typed at signup, the request. Then the page:
    # what was asked, and any suppression of the subscriber the service handed back.
    with django_assert_num_queries(15) as captured:
        done = client.post(url)
    assert done.status_code == 200
    reads = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT") and 'FROM "subscribers_confirmationrequest"' in query["sql"]
    ]
    assert len(reads) == 1 and reads[0].endswith("FOR UPDATE")


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


# --- The page as served at scale (issue 6): cached once, each visitor's token put in ----

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def test_every_visitor_gets_their_own_csrf_token_and_can_sign_up(consent_texts):
    from django.test import Client

    pages = {}
    for name in ("ada", "grace"):
        visitor = Client(enforce_csrf_checks=True)
        page = visitor.get(SIGNUP_URL)
        assert page.status_code == 200
        assert "csrftoken" in page.cookies
        token = CSRF_INPUT.search(page.content.decode()).group(1)
        pages[name] = (page.content.decode(), token)
        answer = visitor.post(
            SIGNUP_URL,
            form_data(consent_texts, email=f"{name}@example.org", csrfmiddlewaretoken=token),
        )
        assert answer.status_code == 302
    (ada_page, ada_token), (grace_page, grace_token) = pages["ada"], pages["grace"]
    assert ada_token != grace_token
    # The same page apart from the token, which is nowhere else in it.
    assert ada_page.replace(ada_token, "T") == grace_page.replace(grace_token, "T")
    assert ada_page.count(ada_token) == 1
    assert Subscriber.objects.count() == 2


def test_a_token_from_another_visitor_is_refused(consent_texts):
    from django.test import Client

    ada, mallory = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    ada.get(SIGNUP_URL)
    token = CSRF_INPUT.search(mallory.get(SIGNUP_URL).content.decode()).group(1)
    mallory_cookie = mallory.cookies["csrftoken"].value
    assert ada.cookies["csrftoken"].value != mallory_cookie
    refused = ada.post(SIGNUP_URL, form_data(consent_texts, csrfmiddlewaretoken=token + "x"))
    assert refused.status_code == 403
    assert not Subscriber.objects.exists()


def test_what_staff_change_shows_on_the_next_page(client, consent_texts):
    purpose = consent_texts["newsletter"].purpose
    client.get(SIGNUP_URL)
    purpose.name = "The Monthly Letter"
    purpose.save()
    assert "The Monthly Letter" in client.get(SIGNUP_URL).content.decode()
    newer = publish_text(purpose, statement="Yes, the monthly letter please.")
    page = client.get(SIGNUP_URL).content.decode()
    assert "Yes, the monthly letter please." in page
    assert f"consent_{newer.pk}_email" in page


def test_the_offers_are_kept_between_requests_while_nothing_changes(client, consent_texts):
    from subscribers import selectors

    first, again = selectors.signup_offers(language="en"), selectors.signup_offers(language="en")
    # The same instances: the second call built nothing, only read the key.
    assert [o.text for o in again] == [o.text for o in first]
    assert all(a.text is b.text and a.purpose is b.purpose for a, b in zip(first, again, strict=True))


def test_a_new_text_version_is_shown_and_recorded_as_soon_as_it_is_published(client, consent_texts):
    purpose = consent_texts["newsletter"].purpose
    old_page = client.get(SIGNUP_URL).content.decode()
    assert f"consent_{consent_texts['newsletter'].pk}_email" in old_page
    newer = publish_text(purpose, statement="Yes, the weekly letter please.", frequency="Every week.")
    page = client.get(SIGNUP_URL).content.decode()
    assert "Yes, the weekly letter please." in page
    assert f"consent_{newer.pk}_email" in page
    assert f"consent_{consent_texts['newsletter'].pk}_email" not in page
    answer = client.post(SIGNUP_URL, {"email": "ada@example.org", f"consent_{newer.pk}_email": "on"})
    assert answer.status_code == 302
    event = ConsentEvent.objects.get()
    assert (event.consent_text_id, event.evidence.submitted["choices"][0]["version"]) == (newer.pk, 2)
    assert ConsentState.objects.get().consent_text_id == newer.pk


def test_a_purpose_changed_behind_the_orm_shows_at_once(client, consent_texts):
    from subscribers.models import Purpose

    client.get(SIGNUP_URL)
    # No save(), no signal, no service: the offers still notice (their key is read each time).
    Purpose.objects.filter(slug="newsletter").update(description="Now with recipes.")
    assert "Now with recipes." in client.get(SIGNUP_URL).content.decode()
    Purpose.objects.filter(slug="newsletter").update(is_active=False)
    page = client.get(SIGNUP_URL).content.decode()
    assert f"consent_{consent_texts['newsletter'].pk}_email" not in page
    refused = client.post(SIGNUP_URL, form_data(consent_texts))
    assert refused.status_code == 400
    assert not ConsentEvent.objects.exists()


def test_an_empty_post_shows_the_form_with_its_errors(client, consent_texts):
    response = client.post(SIGNUP_URL, {})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Please check the form" in html
    assert "This field is required" in html
    assert not Subscriber.objects.exists()


def test_a_signup_post_costs_the_same_few_queries_for_one_box_or_three(
    client, consent_texts, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    texts = [consent_texts[slug] for slug in ("newsletter", "promotions", "events") if slug in consent_texts]
    boxes = {f"consent_{t.pk}_email": "on" for t in texts}
    assert len(boxes) >= 2
    client.get(SIGNUP_URL)  # the visitor's page: the offers are kept from here on
    # The offers' key; then in one transaction (a savepoint here) the subscriber, the
    # request, the events, their evidence, the chain head and the states. The email is
    # queued after.
    with django_capture_on_commit_callbacks() as queued, django_assert_max_num_queries(9):
        response = client.post(SIGNUP_URL, {"email": "ada@example.org", **boxes})
    assert response.status_code == 302
    assert len(queued) == 1
    events = ConsentEvent.objects.order_by("seq")
    assert [e.seq for e in events] == list(range(1, len(boxes) + 1))
    assert ConsentState.objects.filter(status="pending").count() == len(boxes)


def test_signing_up_again_in_another_case_continues_the_same_chain(client, consent_texts):
    from subscribers import ledger

    client.post(SIGNUP_URL, form_data(consent_texts, email="Ada@Example.org"))
    client.post(SIGNUP_URL, form_data(consent_texts, email="ADA@example.org"))
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "Ada@example.org"
    assert [e.seq for e in ConsentEvent.objects.order_by("seq")] == [1, 2]
    assert subscriber.ledger_seq == 2
    assert list(ledger.verify()) == []


def test_the_confirm_page_shows_the_details_confirming_will_save(client, consent_texts, mailoutbox):
    text = consent_texts["newsletter"]
    address = {
        "address_line1": "12 Analytical Row",
        "postal_code": "N1 7AA",
        "city": "London",
        "country": "UK",
    }
    client.post(
        SIGNUP_URL,
        {"email": "ada@example.org", "name": "Ada Lovelace", f"consent_{text.pk}_postal": "on", **address},
    )
    page = client.get(confirm_url_from(mailoutbox[0])).content.decode()
    assert "Confirming also saves the details typed with the request" in page
    assert "Ada Lovelace" in page
    assert "12 Analytical Row, N1 7AA, London, UK" in page
    confirmed = client.post(confirm_url_from(mailoutbox[0])).content.decode()
    assert "use the preferences link in the email you just confirmed from" in confirmed


def test_the_already_subscribed_email_links_to_the_preferences(client, consent_texts, mailoutbox):
    client.post(SIGNUP_URL, form_data(consent_texts))
    client.post(confirm_url_from(mailoutbox[0]))
    mailoutbox.clear()
    client.post(SIGNUP_URL, form_data(consent_texts), REMOTE_ADDR="203.0.113.99")
    [notice] = mailoutbox
    link = re.search(r"https?://\S+/preferences/\S+/", notice.body)
    assert link, notice.body
    assert client.get(link.group(0)).status_code == 200


def test_every_page_links_to_manage_my_subscription(client, consent_texts):
    page = client.get(SIGNUP_URL).content.decode()
    assert f'<a href="{reverse("subscribers:manage")}">Manage my subscription</a>' in page

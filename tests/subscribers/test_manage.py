"""'Manage my subscription' (/manage/) and the bad-link page that leads to it (issue 4 §5, §6)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from subscribers import selectors, services, tasks
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Subscriber

pytestmark = pytest.mark.django_db

MANAGE = "/manage/"
KNOWN = "ada@example.org"


@pytest.fixture
def confirmed_subscriber(confirmed_subscriber, mailoutbox):
    """Ada, with her confirmation email out of the way."""
    mailoutbox.clear()
    return confirmed_subscriber


def ask(client: Client, email: str, ip: str = "198.51.100.1", **extra):
    return client.post(MANAGE, {"email": email, "website": "", **extra}, REMOTE_ADDR=ip)


def prefs_path(message) -> str:
    match = re.search(r"https?://[^/\s]+(/preferences/\S+/)", message.body)
    assert match, message.body
    return match.group(1)


def test_the_url_and_the_page(client):
    assert reverse("subscribers:manage") == MANAGE
    page = client.get(MANAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="email"' in html and 'type="email"' in html
    assert "csrfmiddlewaretoken" in html
    assert 'class="hp-field"' in html or "hp-field" in html


def test_the_email_arrives_with_a_working_fresh_link(client, confirmed_subscriber, mailoutbox):
    response = ask(client, KNOWN)
    assert response.status_code == 302 and response.url == reverse("subscribers:manage_sent")
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [KNOWN]
    assert message.subject == "Your link to manage your subscription to Example Ltd"
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    html_body = message.alternatives[0][0]
    path = prefs_path(message)
    assert path in html_body
    page = client.get(path)
    assert page.status_code == 200
    assert "Your preferences" in page.content.decode()
    token = path.rstrip("/").rsplit("/", 1)[1]
    # Fresh from the moment it is sent: good for the download.
    download = client.get(reverse("subscribers:my_data", args=[token]))
    assert download["Content-Type"] == "application/json"


def test_the_same_answer_for_known_unknown_and_erased_addresses(
    client, confirmed_subscriber, consent_texts, mailoutbox
):
    erased = services.subscriber_sign_up(
        email="gone@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel="email")],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE),
    ).subscriber
    services.subscriber_erase(subscriber=erased, evidence=Evidence(source=ConsentEvent.Source.ADMIN))
    mailoutbox.clear()
    answers = []
    for n, email in enumerate([KNOWN, "nobody@example.org", "gone@example.org"]):
        response = ask(client, email, ip=f"198.51.100.{n + 10}")
        followed = client.get(response.url)
        answers.append((response.status_code, response.url, followed.status_code, followed.content))
    assert answers[0] == answers[1] == answers[2]
    assert b"If we have that address, we've emailed it a link" in answers[0][3]
    assert [m.to for m in mailoutbox] == [[KNOWN]]


def test_the_page_does_the_same_work_for_known_and_unknown_addresses(
    client, confirmed_subscriber, monkeypatch, django_assert_num_queries
):
    """Not even the response time may tell: no lookup in the request, one task either way,
    and the broker gets the address's keyed hash, never the address."""
    queued: list[tuple] = []
    monkeypatch.setattr(tasks.send_manage_link_for_address, "delay", lambda *args: queued.append(args))
    for n, email in enumerate([KNOWN, "nobody@example.org"]):
        with django_assert_num_queries(0):
            assert ask(client, email, ip=f"198.51.100.{n + 30}").status_code == 302
    assert queued == [(services.address_hash(KNOWN),), (services.address_hash("nobody@example.org"),)]
    assert all("@" not in args[0] for args in queued)


def test_the_address_is_matched_whatever_its_case(client, confirmed_subscriber, mailoutbox):
    ask(client, "  ADA@Example.ORG ")
    assert [m.to for m in mailoutbox] == [[KNOWN]]


def test_at_most_one_email_per_address_in_the_interval_whoever_asks(
    client, confirmed_subscriber, mailoutbox, settings
):
    settings.MANAGE_LINK_INTERVAL_MINUTES = 15
    first = ask(client, KNOWN, ip="198.51.100.1")
    second = ask(client, KNOWN, ip="203.0.113.99")
    assert first.url == second.url == reverse("subscribers:manage_sent")
    assert len(mailoutbox) == 1


def test_each_ip_address_is_rate_limited(client, confirmed_subscriber, mailoutbox, settings):
    settings.MANAGE_LINK_RATE_LIMIT = "2/h"
    assert ask(client, "one@example.org").status_code == 302
    assert ask(client, "two@example.org").status_code == 302
    limited = ask(client, KNOWN)
    assert limited.status_code == 429
    assert "try again in an hour" in limited.content.decode()
    assert mailoutbox == []
    assert ask(client, KNOWN, ip="192.0.2.50").status_code == 302  # another network is not held back
    assert len(mailoutbox) == 1


def test_a_filled_honeypot_sends_nothing_but_answers_the_same(client, confirmed_subscriber, mailoutbox):
    response = ask(client, KNOWN, website="http://spam.example")
    assert response.url == reverse("subscribers:manage_sent")
    assert mailoutbox == []


@pytest.mark.parametrize("email", ["", "not an address", "a@b@c"])
def test_a_bad_address_gets_a_field_error(client, email, mailoutbox):
    response = ask(client, email)
    assert response.status_code == 400
    assert (
        'aria-invalid="true"' in response.content.decode() or "invalid-feedback" in response.content.decode()
    )
    assert mailoutbox == []


def test_a_post_without_the_csrf_token_is_refused(confirmed_subscriber, mailoutbox):
    response = Client(enforce_csrf_checks=True).post(MANAGE, {"email": KNOWN})
    assert response.status_code == 403
    assert mailoutbox == []


@pytest.mark.parametrize("url_name", ["subscribers:preferences", "subscribers:unsubscribe"])
def test_a_bad_link_offers_the_manage_form_and_it_works_from_there(
    client, confirmed_subscriber, url_name, mailoutbox
):
    page = client.get(reverse(url_name, args=["altered-or-cut-off"]))
    assert page.status_code == 400
    html = page.content.decode()
    assert "We couldn't read this link" in html
    assert "Get a fresh link by email" in html
    assert f'action="{MANAGE}"' in html and 'name="email"' in html
    assert reverse("subscribers:signup") in html and "mailto:" in html  # still there
    assert ask(client, KNOWN).status_code == 302
    assert [m.to for m in mailoutbox] == [[KNOWN]]


def test_an_erased_subscribers_old_link_leads_to_the_manage_form(client, confirmed_subscriber):
    token = selectors.preferences_token(confirmed_subscriber)
    services.subscriber_erase(
        subscriber=confirmed_subscriber, evidence=Evidence(source=ConsentEvent.Source.ADMIN)
    )
    page = client.get(reverse("subscribers:preferences", args=[token]))
    assert page.status_code == 400
    assert f'action="{MANAGE}"' in page.content.decode()
    assert Subscriber.objects.get(pk=confirmed_subscriber.pk).email is None

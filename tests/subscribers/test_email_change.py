"""Moving a subscription to another address: asked for on the preference centre, confirmed
from the new address, noticed at the old one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from subscribers import ledger, links, selectors, services, tasks, tokens
from subscribers.ledger import Evidence
from subscribers.models import (
    ConsentEvent,
    ConsentState,
    EmailChangeRequest,
    Purpose,
    Subscriber,
    Suppression,
)
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (preferences)"
IP = "192.0.2.61"
CLICK_UA = "Mozilla/5.0 (new mailbox)"
CLICK_IP = "198.51.100.77"


@pytest.fixture
def ada(confirmed_subscriber) -> Subscriber:
    return confirmed_subscriber


def prefs_url(subscriber: Subscriber) -> str:
    subscriber.refresh_from_db()
    return reverse("subscribers:preferences", args=[selectors.preferences_token(subscriber)])


def ask(client: Client, subscriber: Subscriber, new_email: str, url: str | None = None):
    return client.post(
        url or prefs_url(subscriber),
        {"action": "email", "new_email": new_email},
        HTTP_USER_AGENT=UA,
        REMOTE_ADDR=IP,
    )


def confirm_path(message) -> str:
    found = re.search(r"https?://\S+?(/email-change/[^/\s]+/)", message.body)
    assert found, message.body
    return found.group(1)


def confirm(client: Client, path: str):
    return client.post(path, HTTP_USER_AGENT=CLICK_UA, REMOTE_ADDR=CLICK_IP)


def kinds(subscriber: Subscriber) -> list[str]:
    return list(
        ConsentEvent.objects.filter(subscriber=subscriber).order_by("seq").values_list("kind", flat=True)
    )


def test_asking_records_the_request_and_mails_both_addresses(client, ada, mailoutbox):
    response = ask(client, ada, "  Ada.New@Example.COM ")
    assert response.status_code == 302
    change = EmailChangeRequest.objects.get()
    assert (change.subscriber, change.new_email) == (ada, "Ada.New@example.com")
    assert change.expires_at - change.created_at == timedelta(days=7)
    assert (change.confirmed_at, change.cancelled_at) == (None, None)
    event = ConsentEvent.objects.filter(subscriber=ada).order_by("seq").last()
    assert (event.kind, event.purpose, event.channel, event.consent_text, event.source) == (
        "email_change_requested",
        None,
        "",
        None,
        "preference_centre",
    )
    assert event.evidence.submitted == {"new_email": "Ada.New@example.com"}
    assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    ada.refresh_from_db()
    assert (ada.email, ada.link_generation) == ("ada@example.org", 1)  # nothing changes yet

    to_new, to_old = sorted(mailoutbox[1:], key=lambda m: m.to[0] != "Ada.New@example.com")
    assert to_new.to == ["Ada.New@example.com"]
    assert to_new.subject == "Please confirm your new address for Example Ltd"
    path = confirm_path(to_new)
    assert tokens.email_change_request_id(path.split("/")[2]) == change.pk
    assert path in to_new.alternatives[0][0]
    assert to_old.to == ["ada@example.org"]
    assert to_old.subject == "Someone asked to move your Example Ltd subscription"
    assert "if this wasn't you, do nothing" in to_old.body.lower()
    assert "Ada.New" not in to_old.body and "/email-change/" not in to_old.body
    assert to_old.extra_headers["Auto-Submitted"] == "auto-generated"

    page = client.get(response.url)
    assert [str(m) for m in page.context["messages"]] == [
        "We've sent a link to Ada.New@example.com. Your address changes when you click it; "
        "until then we keep using this one."
    ]
    assert "A move to Ada.New@example.com is waiting" in page.content.decode()
    assert list(ledger.verify()) == []


def test_confirming_from_the_new_address_moves_the_subscription(client, ada, mailoutbox):
    old_prefs = prefs_url(ada)
    newsletter = Purpose.objects.get(slug="newsletter")
    old_unsubscribe = reverse(
        "subscribers:unsubscribe", args=[links.make("unsubscribe", ada.pk, newsletter.pk)]
    )
    ask(client, ada, "ada@new.example")
    path = confirm_path(next(m for m in mailoutbox if m.to == ["ada@new.example"]))

    # A link scanner's fetch changes nothing; the page shows one button.
    page = client.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert len(re.findall(r"<button", html.split("<main", 1)[1])) == 1
    assert "ada@new.example" in html
    ada.refresh_from_db()
    assert ada.email == "ada@example.org"

    response = confirm(client, path)
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.email, ada.email_hash, ada.link_generation) == (
        "ada@new.example",
        services.address_hash("ada@new.example"),
        2,
    )
    # The preference centre, on a link of the new generation (made by the view, so compared
    # by what it says: a token made here a second later would carry another timestamp).
    claims = links.read("preferences", response.url.rstrip("/").rsplit("/", 1)[1])
    assert response.url.startswith("/preferences/")
    assert claims is not None and (claims.subscriber_id, claims.generation) == (ada.pk, 2)
    event = ConsentEvent.objects.filter(subscriber=ada).order_by("seq").last()
    assert (event.kind, event.purpose, event.channel, event.consent_text, event.source, event.actor) == (
        "email_changed",
        None,
        "",
        None,
        "confirmation_link",
        "subscriber",
    )
    assert event.evidence.submitted == {"old_email": "ada@example.org", "new_email": "ada@new.example"}
    assert (event.evidence.ip_address, event.evidence.user_agent) == (CLICK_IP, CLICK_UA)
    assert EmailChangeRequest.objects.get().confirmed_at == event.occurred_at
    page = client.get(response.url)
    assert [str(m) for m in page.context["messages"]][-1] == "Done: we now use ada@new.example."
    assert ConsentState.objects.get(subscriber=ada).status == "active"  # consents move with the address

    # Preferences links sent to the old address stop working; unsubscribe links never do.
    revoked = client.get(old_prefs)
    assert revoked.status_code == 400
    assert "We couldn't read this link" in revoked.content.decode()
    revoked_post = client.post(old_prefs, {"action": "pause", "months": "1"})
    assert revoked_post.status_code == 400
    one_click = client.post(old_unsubscribe, {"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert ConsentState.objects.get(subscriber=ada).status == "withdrawn"
    assert kinds(ada)[-2:] == ["email_changed", "withdrawn"]
    assert list(ledger.verify()) == []


def test_a_used_link_says_so_and_changes_nothing_more(client, ada, mailoutbox):
    ask(client, ada, "ada@new.example")
    path = confirm_path(next(m for m in mailoutbox if m.to == ["ada@new.example"]))
    confirm(client, path)
    before = kinds(ada)
    for response in (client.get(path), confirm(client, path)):
        assert response.status_code == 200
        assert "Already done" in response.content.decode()
    assert kinds(ada) == before
    ada.refresh_from_db()
    assert ada.link_generation == 2


def test_a_newer_request_replaces_the_older_one(client, ada, mailoutbox):
    ask(client, ada, "first@new.example")
    ask(client, ada, "second@new.example")
    first, second = EmailChangeRequest.objects.order_by("created_at")
    assert first.cancelled_at is not None and second.cancelled_at is None
    first_path = confirm_path(next(m for m in mailoutbox if m.to == ["first@new.example"]))
    for response in (client.get(first_path), confirm(client, first_path)):
        assert response.status_code == 410
        assert "A newer request replaced this one" in response.content.decode()
    ada.refresh_from_db()
    assert ada.email == "ada@example.org"
    confirm(client, confirm_path(next(m for m in mailoutbox if m.to == ["second@new.example"])))
    ada.refresh_from_db()
    assert ada.email == "second@new.example"


def test_an_expired_link_changes_nothing(client, ada, mailoutbox):
    ask(client, ada, "ada@new.example")
    EmailChangeRequest.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    path = confirm_path(next(m for m in mailoutbox if m.to == ["ada@new.example"]))
    before = kinds(ada)
    for response in (client.get(path), confirm(client, path)):
        assert response.status_code == 410
        assert "This link has expired" in response.content.decode()
    ada.refresh_from_db()
    assert (ada.email, ada.link_generation) == ("ada@example.org", 1)
    assert kinds(ada) == before


def test_an_address_another_subscriber_holds_is_refused_on_confirming(client, ada, mailoutbox):
    SubscriberFactory(email="Grace@Example.org")
    # Asking reveals nothing about who is subscribed: the link goes out as usual.
    assert ask(client, ada, "grace@example.org").status_code == 302
    path = confirm_path(next(m for m in mailoutbox if m.to == ["grace@example.org"]))
    before = kinds(ada)
    response = confirm(client, path)
    assert response.status_code == 409
    html = response.content.decode()
    assert "This address is already on our list" in html
    assert "grace@example.org" in html
    ada.refresh_from_db()
    assert (ada.email, ada.link_generation) == ("ada@example.org", 1)
    assert kinds(ada) == before
    assert EmailChangeRequest.objects.get().confirmed_at is None


@pytest.mark.parametrize(
    "typed, error",
    [
        ("ada@@example", "look like an email address"),
        ("not an address", "look like an email address"),
        ("a" * 250 + "@example.org", "at most 254 characters"),
        ("", "This field is required."),
        ("ADA@example.org", "That&#x27;s the address we already use."),
    ],
    ids=["malformed", "no at sign", "oversized", "empty", "the same address"],
)
def test_bad_addresses_get_a_field_error_and_nothing_is_sent(client, ada, mailoutbox, typed, error):
    sent, before = len(mailoutbox), kinds(ada)
    response = ask(client, ada, typed)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert response.context["email_form"].errors["new_email"]
    assert not EmailChangeRequest.objects.exists()
    assert (len(mailoutbox), kinds(ada)) == (sent, before)


@pytest.mark.parametrize("token", ["nonsense", "x" * 300])
def test_an_altered_link_gets_a_friendly_page(client, ada, token):
    response = client.get(reverse("subscribers:email_change_confirm", args=[token]))
    assert response.status_code == 400
    assert "We couldn't read this link" in response.content.decode()


def test_a_confirmation_token_does_not_open_an_address_change(client, ada, mailoutbox):
    ask(client, ada, "ada@new.example")
    change = EmailChangeRequest.objects.get()
    wrong_kind = tokens.confirmation_token(change.pk)
    assert confirm(client, reverse("subscribers:email_change_confirm", args=[wrong_kind])).status_code == 400
    # Nor the other way round.
    other_kind = tokens.email_change_token(change.pk)
    assert client.post(reverse("subscribers:confirm", args=[other_kind])).status_code == 400
    ada.refresh_from_db()
    assert ada.email == "ada@example.org"


def test_asking_is_limited_per_subscriber(client, ada, mailoutbox):
    for n in range(5):
        assert ask(client, ada, f"ada{n}@new.example").status_code == 302
    response = ask(client, ada, "ada9@new.example")
    assert response.status_code == 429
    assert "Try again in an hour" in response.content.decode()
    assert EmailChangeRequest.objects.count() == 5


def test_the_notice_goes_to_the_old_address_even_after_a_quick_confirmation(
    ada, django_capture_on_commit_callbacks, mailoutbox
):
    evidence = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
    with django_capture_on_commit_callbacks() as queued:
        change = services.email_change_request(subscriber=ada, new_email="ada@new.example", evidence=evidence)
    services.email_change_confirm(request_id=change.pk, evidence=evidence)
    sent = len(mailoutbox)
    for callback in queued:
        callback()
    # The confirmation link is not sent for a change already made; the notice still goes out.
    assert [m.to for m in mailoutbox[sent:]] == [["ada@example.org"]]


def test_an_erased_subscriber_cannot_confirm(ada, mailoutbox):
    evidence = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
    change = services.email_change_request(subscriber=ada, new_email="ada@new.example", evidence=evidence)
    Subscriber.objects.filter(pk=ada.pk).update(email=None)
    with pytest.raises(services.PreferenceError) as raised:
        services.email_change_confirm(request_id=change.pk, evidence=evidence)
    assert raised.value.reason == "unknown"


def test_a_retried_email_task_never_sends_either_email_twice(ada, mailoutbox):
    """A worker that dies after sending but before the task is acknowledged runs it again."""
    evidence = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
    change = services.email_change_request(subscriber=ada, new_email="ada@new.example", evidence=evidence)
    sent = sorted(m.to[0] for m in mailoutbox[1:])
    assert sent == ["ada@example.org", "ada@new.example"]
    change.refresh_from_db()
    assert change.confirmation_sent_at is not None and change.notice_sent_at is not None
    before = len(mailoutbox)
    tasks.send_email_change_confirmation(str(change.pk))
    tasks.send_email_change_notice(str(change.pk))
    assert len(mailoutbox) == before


def test_moving_lifts_an_erasure_but_not_a_bounce_and_says_so(client, ada, mailoutbox):
    newsletter = Purpose.objects.get(slug="newsletter")
    # Two people asked us, long ago, to erase them; one other address bounced for good.
    for address in ("old.ada@example.net", "bounced@example.net"):
        gone = SubscriberFactory(email=address, email_hash=services.address_hash(address))
        services.subscriber_erase(
            subscriber=gone, evidence=Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
        )
    Suppression.objects.filter(email_hash=services.address_hash("bounced@example.net")).update(
        reason=Suppression.Reason.HARD_BOUNCE
    )

    ask(client, ada, "old.ada@example.net")
    moved = confirm(client, confirm_path(next(m for m in mailoutbox if m.to == ["old.ada@example.net"])))
    assert "suppression-notice" not in client.get(moved.url).content.decode()
    ada.refresh_from_db()
    assert ada.email == "old.ada@example.net"
    assert not Suppression.objects.filter(email_hash=ada.email_hash).exists()
    assert kinds(ada)[-2:] == [ConsentEvent.Kind.EMAIL_CHANGED, ConsentEvent.Kind.SUPPRESSION_LIFTED]
    assert selectors.sendable_consents(purpose_id=newsletter.pk).filter(subscriber=ada).exists()

    mailoutbox.clear()
    ask(client, ada, "bounced@example.net")
    moved = confirm(client, confirm_path(next(m for m in mailoutbox if m.to == ["bounced@example.net"])))
    # The person lands on their preferences, which say plainly that nothing goes there.
    page = client.get(moved.url).content.decode()
    assert "We don't send anything to this address at the moment" in page
    assert "came back as undeliverable" in page
    ada.refresh_from_db()
    assert ada.email == "bounced@example.net"
    assert Suppression.objects.filter(
        email_hash=ada.email_hash, reason=Suppression.Reason.HARD_BOUNCE
    ).exists()
    assert not selectors.sendable_consents(purpose_id=newsletter.pk).filter(subscriber=ada).exists()
    assert list(ledger.verify()) == []


def test_address_change_emails_that_never_left_are_sent_by_the_sweep(client, ada, mailoutbox, settings):
    ask(client, ada, "ada.sweep@example.net")
    change = EmailChangeRequest.objects.get(subscriber=ada)
    # As if the broker had been down when the request committed: neither email went.
    old = timezone.now() - timedelta(seconds=settings.UNSENT_EMAIL_AFTER_SECONDS + 1)
    EmailChangeRequest.objects.filter(pk=change.pk).update(
        confirmation_sent_at=None, notice_sent_at=None, created_at=old
    )
    mailoutbox.clear()

    assert tasks.send_unsent_emails() == 2
    assert sorted(m.to[0] for m in mailoutbox) == ["ada.sweep@example.net", ada.email]
    assert tasks.send_unsent_emails() == 0
    assert len(mailoutbox) == 2

"""Undo right after unsubscribing (issue 4 §2): exactly what was withdrawn comes back."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from subscribers import ledger, links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, ConsentText, Purpose, Subscriber
from subscribers.services import preferences as preference_services
from tests.factories import publish_text

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (undo)"
IP = "192.0.2.90"


@pytest.fixture
def client() -> Client:
    # The unsubscribe page takes no CSRF token (RFC 8058); its undo button must not need one.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def newsletter() -> Purpose:
    return Purpose.objects.get(slug="newsletter")


@pytest.fixture
def ada(confirmed_subscriber, consent_texts) -> Subscriber:
    """Newsletter by email (the fixture), promotions by email and the newsletter by post
    confirmed, product information by email still awaiting confirmation."""
    Subscriber.objects.filter(pk=confirmed_subscriber.pk).update(
        address_line1="12 Analytical Row", postal_code="N1 7AA", city="London", country="United Kingdom"
    )
    evidence = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE)
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
    services.subscriber_sign_up(
        email="ada@example.org",
        choices=[
            services.ConsentChoice(consent_text=consent_texts["product-information"], channel=Channel.EMAIL)
        ],
        evidence=evidence,
    )
    return confirmed_subscriber


def unsubscribe_url(subscriber: Subscriber, purpose: Purpose) -> str:
    return reverse("subscribers:unsubscribe", args=[links.make("unsubscribe", subscriber.pk, purpose.pk)])


def statuses(subscriber: Subscriber) -> dict[tuple[str, str], str]:
    return {
        (s.purpose.slug, s.channel): s.status
        for s in ConsentState.objects.filter(subscriber=subscriber).select_related("purpose")
    }


def undo_ids(html: str) -> list[str]:
    form = re.search(r'<form[^>]*id="undo-form".*?</form>', html, re.S)
    assert form, "no undo form"
    return re.findall(r'name="withdrawal" value="(\d+)"', form.group(0))


def undo(client: Client, url: str, ids: list[str]):
    return client.post(url, {"undo": "1", "withdrawal": ids}, HTTP_USER_AGENT=UA, REMOTE_ADDR=IP)


def test_unsubscribe_then_undo_turns_the_newsletter_back_on(client, ada, newsletter, consent_texts):
    url = unsubscribe_url(ada, newsletter)
    page = client.post(url, {"confirm": "1"}).content.decode()
    (withdrawal,) = ConsentEvent.objects.filter(subscriber=ada, kind="withdrawn")
    assert undo_ids(page) == [str(withdrawal.pk)]
    assert re.search(r'<form[^>]*action="' + re.escape(url) + '"[^>]*id="undo-form"', page)
    assert reverse("subscribers:preferences", args=[selectors.preferences_token(ada)]) in page

    response = undo(client, url, [str(withdrawal.pk)])
    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "You're subscribed again" in html
    assert "You'll get Newsletter emails again." in html
    assert reverse("subscribers:preferences", args=[selectors.preferences_token(ada)]) in html
    requested, confirmed = (
        ConsentEvent.objects.filter(subscriber=ada)
        .order_by("seq")
        .select_related("evidence")[withdrawal.seq :]
    )
    for event, kind in ((requested, "requested"), (confirmed, "confirmed")):
        assert (event.kind, event.purpose, event.channel, event.source, event.consent_text) == (
            kind,
            newsletter,
            "email",
            "unsubscribe_link",
            consent_texts["newsletter"],
        )
        assert event.evidence.submitted == {"undo": True, "withdrawals": [withdrawal.pk]}
        assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    state = ConsentState.objects.get(subscriber=ada, purpose=newsletter, channel="email")
    assert (state.status, state.confirmed_at, state.withdrawn_at, state.last_event) == (
        "active",
        confirmed.occurred_at,
        None,
        confirmed,
    )
    assert list(ledger.verify()) == []


def test_undoing_leave_everything_restores_exactly_what_was_on(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    page = client.post(url, {"confirm": "1", "everything": "1"}).content.decode()
    ids = undo_ids(page)
    assert len(ids) == 4
    assert undo(client, url, ids).status_code == 200
    assert statuses(ada) == {
        ("newsletter", "email"): "active",
        ("newsletter", "postal"): "active",
        ("promotions", "email"): "active",
        # It was never confirmed, so there is nothing to restore.
        ("product-information", "email"): "withdrawn",
    }
    assert list(ledger.verify()) == []


def test_pressing_undo_twice_records_it_once(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1"}).content.decode())
    undo(client, url, ids)
    count = ConsentEvent.objects.filter(subscriber=ada).count()
    second = undo(client, url, ids)
    assert second.status_code == 200
    assert "You're subscribed again" in unescape(second.content.decode())
    assert ConsentEvent.objects.filter(subscriber=ada).count() == count


def test_undo_works_for_an_hour(client, ada, newsletter, monkeypatch):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1"}).content.decode())
    later = timezone.now() + timedelta(hours=1, seconds=1)
    monkeypatch.setattr(preference_services.timezone, "now", lambda: later)
    count = ConsentEvent.objects.filter(subscriber=ada).count()
    response = undo(client, url, ids)
    assert response.status_code == 400
    assert "We couldn't undo this" in unescape(response.content.decode())
    assert statuses(ada)[("newsletter", "email")] == "withdrawn"
    assert ConsentEvent.objects.filter(subscriber=ada).count() == count


def test_undo_accepts_only_this_unsubscribes_withdrawals(client, ada, newsletter, consent_texts):
    url = unsubscribe_url(ada, newsletter)
    promotions = Purpose.objects.get(slug="promotions")
    # A withdrawal made on the preference centre is not the unsubscribe page's to undo.
    from_prefs = services.consent_withdraw(
        subscriber=ada,
        purpose=promotions,
        channel=Channel.EMAIL,
        evidence=Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE),
    )
    other = services.subscriber_sign_up(
        email="grace@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE),
    )
    assert other.request is not None
    services.subscription_confirm(
        request_id=other.request.pk, evidence=Evidence(source=ConsentEvent.Source.CONFIRMATION_LINK)
    )
    client.post(unsubscribe_url(other.subscriber, newsletter), {"confirm": "1"})
    graces = ConsentEvent.objects.get(subscriber=other.subscriber, kind="withdrawn")
    confirmed = ConsentEvent.objects.filter(subscriber=ada, kind="confirmed").first()
    assert from_prefs is not None and confirmed is not None
    count = ConsentEvent.objects.count()
    for ids in ([from_prefs.pk], [graces.pk], [confirmed.pk], ["abc", "²", "9" * 40, "-1"], []):
        response = undo(client, url, [str(i) for i in ids])
        assert response.status_code == 400
    assert ConsentEvent.objects.count() == count
    assert statuses(ada)[("promotions", "email")] == "withdrawn"
    assert statuses(other.subscriber)[("newsletter", "email")] == "withdrawn"


def test_a_later_choice_wins_over_undo(client, ada, newsletter, consent_texts):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1"}).content.decode())
    prefs = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
    services.consent_opt_in(
        subscriber=ada,
        purpose=newsletter,
        channel=Channel.EMAIL,
        consent_text_id=consent_texts["newsletter"].pk,
        evidence=prefs,
    )
    services.consent_withdraw(subscriber=ada, purpose=newsletter, channel=Channel.EMAIL, evidence=prefs)
    assert undo(client, url, ids).status_code == 400
    assert statuses(ada)[("newsletter", "email")] == "withdrawn"


def test_one_click_unsubscribe_is_unchanged_by_undo(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    response = client.post(url, {"List-Unsubscribe": "One-Click", "undo": "1"})
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert statuses(ada)[("newsletter", "email")] == "withdrawn"


# --- Undo shows no wording: it restores the version agreed to, or sends the person to read the new one


def test_undo_restores_the_version_agreed_to(client, ada, newsletter, consent_texts):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1"}).content.decode())
    # Only a draft in another language is new: English wording Ada agreed to is still current.
    publish_text(newsletter, language="de", statement="Ja, schickt mir den Newsletter")
    assert undo(client, url, ids).status_code == 200
    agreed = consent_texts["newsletter"]
    requested, confirmed = list(
        ConsentEvent.objects.filter(subscriber=ada, purpose=newsletter).order_by("seq")
    )[-2:]
    assert [(e.kind, e.consent_text_id) for e in (requested, confirmed)] == [
        ("requested", agreed.pk),
        ("confirmed", agreed.pk),
    ]
    assert ConsentText.objects.get(pk=confirmed.consent_text_id).digest == ledger.text_digest(agreed)


def test_undo_after_the_wording_changed_sends_the_person_to_read_it(client, ada, newsletter):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1"}).content.decode())
    new = publish_text(newsletter, statement="Yes, send me the newsletter, now with partner offers")
    count = ConsentEvent.objects.filter(subscriber=ada).count()

    response = undo(client, url, ids)

    # Nothing recorded: neither the old wording (no longer offered) nor the new (never shown).
    assert ConsentEvent.objects.filter(subscriber=ada).count() == count
    assert statuses(ada)[("newsletter", "email")] == "withdrawn"
    prefs = reverse("subscribers:preferences", args=[selectors.preferences_token(ada)])
    assert response.status_code == 302
    assert response.url == f"{prefs}#purpose-{newsletter.pk}"
    page = client.get(response.url)
    html = unescape(page.content.decode())
    assert [str(m) for m in page.context["messages"]] == [
        "The wording for Newsletter changed since you agreed to it, so we haven't switched it back "
        "on. Please read it and switch it on again if you still want it."
    ]
    assert f"Switching on means: “{new.statement}”" in html
    assert re.search(rf'name="consent_text" value="{new.pk}"', html)
    assert list(ledger.verify()) == []


def test_undoing_everything_restores_what_kept_its_wording_and_sends_on_for_the_rest(
    client, ada, newsletter, consent_texts
):
    url = unsubscribe_url(ada, newsletter)
    ids = undo_ids(client.post(url, {"confirm": "1", "everything": "1"}).content.decode())
    publish_text(newsletter, use="To send you the newsletter, and to count who reads it.")

    response = undo(client, url, ids)

    assert statuses(ada) == {
        ("newsletter", "email"): "withdrawn",
        ("newsletter", "postal"): "withdrawn",
        ("promotions", "email"): "active",
        ("product-information", "email"): "withdrawn",
    }
    (promotions_on,) = ConsentEvent.objects.filter(
        subscriber=ada, kind="confirmed", source="unsubscribe_link"
    )
    assert promotions_on.consent_text_id == consent_texts["promotions"].pk
    assert response.status_code == 302
    messages = [str(m) for m in client.get(response.url).context["messages"]]
    assert messages == [
        "Promotions by email is on again.",
        "The wording for Newsletter changed since you agreed to it, so we haven't switched it back "
        "on. Please read it and switch it on again if you still want it.",
    ]
    assert list(ledger.verify()) == []


def test_undo_says_tracking_is_on_again_not_that_it_is_received(client, ada, newsletter, consent_texts):
    tracking = next(t for t in consent_texts.values() if t.purpose.kind == Purpose.Kind.TRACKING)
    evidence = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE)
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        choices=[services.ConsentChoice(consent_text=tracking, channel=Channel.EMAIL)],
        evidence=evidence,
    )
    services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)
    url = unsubscribe_url(ada, newsletter)
    page = client.post(url, {"confirm": "1", "everything": "1"}).content.decode()
    html = undo(client, url, undo_ids(page)).content.decode()
    name = tracking.purpose.name
    assert f"{name} is on again." in html
    assert f"get {name} emails" not in html
    assert "get Newsletter emails again." in html

"""The preference centre: what it shows, and the exact record each change leaves."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from subscribers import ledger, links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, ConsentText, Purpose, Subscriber
from tests.factories import publish_text

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (preferences)"
IP = "192.0.2.61"
ADDRESS = {
    "address_line1": "12 Analytical Row",
    "address_line2": "",
    "postal_code": "N1 7AA",
    "city": "London",
    "country": "United Kingdom",
}


@pytest.fixture
def ada(confirmed_subscriber) -> Subscriber:
    return confirmed_subscriber


@pytest.fixture
def newsletter() -> Purpose:
    return Purpose.objects.get(slug="newsletter")


@pytest.fixture
def promotions() -> Purpose:
    return Purpose.objects.get(slug="promotions")


def prefs_url(subscriber: Subscriber) -> str:
    subscriber.refresh_from_db()
    return reverse("subscribers:preferences", args=[selectors.preferences_token(subscriber)])


def post(client: Client, subscriber: Subscriber, **data):
    return client.post(prefs_url(subscriber), data, HTTP_USER_AGENT=UA, REMOTE_ADDR=IP)


def shown_text(subscriber: Subscriber, purpose: Purpose) -> ConsentText:
    """The wording the page shows for ``purpose``: its latest version in the subscriber's language."""
    return purpose.texts.filter(language=subscriber.language).latest("version")


def switch_on(client: Client, subscriber: Subscriber, purpose: Purpose, channel: str = Channel.EMAIL):
    """Press a switch that is off, as the page sends it: with the text version it shows."""
    text = shown_text(subscriber, purpose)
    return post(
        client,
        subscriber,
        action="consent",
        purpose=purpose.pk,
        channel=channel,
        enabled="1",
        consent_text=text.pk,
    )


def events(subscriber: Subscriber, *kinds: str) -> list[ConsentEvent]:
    found = ConsentEvent.objects.filter(subscriber=subscriber).select_related("evidence", "purpose")
    if kinds:
        found = found.filter(kind__in=kinds)
    return list(found.order_by("seq"))


def state(subscriber: Subscriber, purpose: Purpose, channel: str = Channel.EMAIL) -> ConsentState:
    return ConsentState.objects.get(subscriber=subscriber, purpose=purpose, channel=channel)


def assert_unchanged(subscriber: Subscriber, before: int) -> None:
    assert ConsentEvent.objects.filter(subscriber=subscriber).count() == before
    assert list(ledger.verify()) == []


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def switch(html: str, purpose: Purpose, channel: str) -> str:
    found = re.search(rf'<button[^>]*id="switch-{purpose.pk}-{channel}"[^>]*>', html)
    assert found, f"no switch for {purpose.slug} {channel}"
    return found.group(0)


# --- What the page shows ----------------------------------------------------------------


def test_the_page_shows_every_purpose_in_full_with_its_switches(client, ada, consent_texts, newsletter):
    response = client.get(prefs_url(ada))
    assert response.status_code == 200
    html = response.content.decode()
    for text in consent_texts.values():
        assert text.purpose.name in html
        for part in (text.statement, text.use, text.retention, text.withdrawal, text.controller):
            assert part in html
    agreed = state(ada, newsletter).confirmed_at
    assert f"you agreed on {agreed:%-d %B %Y} (text version 1)" in html
    # Only what Ada chose is on: nothing else is switched on or ticked for her.
    switches = re.findall(r'<button[^>]*role="switch"[^>]*>', html)
    assert len(switches) == 7  # three purposes by email and by post, and tracking by email
    assert [s for s in switches if 'aria-checked="true"' in s] == [switch(html, newsletter, "email")]
    radios = re.findall(r'<input[^>]*type="radio"[^>]*>', html)
    assert [r for r in radios if "checked" in r] == [
        r for r in radios if 'name="frequency"' in r and 'value="every"' in r
    ]
    assert len([r for r in radios if 'name="months"' in r]) == 3
    assert html.count('name="csrfmiddlewaretoken"') >= 10  # every form posts with its token
    assert re.search(r'<label\s+for="id_profile_name"', html)
    assert re.search(r'<label\s+for="id_change_new_email"', html)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))
    assert "ada@example.org" in html


def test_a_post_without_the_csrf_token_is_refused(ada, newsletter):
    response = Client(enforce_csrf_checks=True).post(
        prefs_url(ada), {"action": "consent", "purpose": newsletter.pk, "channel": "email", "enabled": "0"}
    )
    assert response.status_code == 403
    assert state(ada, newsletter).status == ConsentState.Status.ACTIVE


@pytest.mark.parametrize("kind", ["unsubscribe scope", "nonsense", "revoked", "erased"])
def test_bad_links_get_the_friendly_page_and_change_nothing(client, ada, newsletter, kind):
    token = {
        "unsubscribe scope": links.make("unsubscribe", ada.pk, newsletter.pk),
        "nonsense": "nonsense",
        "revoked": selectors.preferences_token(ada),
        "erased": selectors.preferences_token(ada),
    }[kind]
    if kind == "revoked":
        Subscriber.objects.filter(pk=ada.pk).update(link_generation=2)
    if kind == "erased":
        Subscriber.objects.filter(pk=ada.pk).update(email=None)
    before = ConsentEvent.objects.count()
    url = reverse("subscribers:preferences", args=[token])
    for response in (
        client.get(url),
        client.post(url, {"action": "consent", "purpose": newsletter.pk, "channel": "email", "enabled": "0"}),
    ):
        assert response.status_code == 400
        assert "We couldn't read this link" in response.content.decode()
    assert ConsentEvent.objects.count() == before
    assert ConsentState.objects.get(subscriber=ada).status == ConsentState.Status.ACTIVE


def test_the_confirmation_email_links_to_the_preference_centre(client, consent_texts, mailoutbox):
    text = consent_texts["newsletter"]
    client.post(
        reverse("subscribers:signup"), {"email": "grace@example.org", f"consent_{text.pk}_email": "on"}
    )
    (message,) = mailoutbox
    html = message.alternatives[0][0]
    found = re.search(r"https?://\S+?(/preferences/[^/\s]+/)", message.body)
    assert found, message.body
    assert f'href="{found.group(0)}"' in html
    response = client.get(found.group(1))
    assert response.status_code == 200
    assert "grace@example.org" in response.content.decode()


# --- Switching a purpose off and on -----------------------------------------------------


def test_switching_off_withdraws_with_the_evidence_of_the_click(client, ada, newsletter):
    # One URL for the whole test: a token made a second later would differ (its timestamp).
    url = prefs_url(ada)
    response = client.post(
        url,
        {"action": "consent", "purpose": newsletter.pk, "channel": "email", "enabled": "0"},
        HTTP_USER_AGENT=UA,
        REMOTE_ADDR=IP,
    )
    assert response.status_code == 302
    assert response.url == url
    (event,) = events(ada, "withdrawn")
    assert (event.purpose, event.channel, event.source, event.actor) == (
        newsletter,
        "email",
        "preference_centre",
        "subscriber",
    )
    assert event.consent_text_id == state(ada, newsletter).consent_text_id
    assert event.evidence.submitted == {
        "action": "consent",
        "purpose": newsletter.pk,
        "channel": "email",
        "enabled": False,
    }
    assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    # The page, not its key: the link works for a year and proofs are handed to others.
    assert event.evidence.page_url == "http://testserver/preferences/<token>/"
    assert url.split("/")[2] not in str(selectors.consent_proof(subscriber=ada))
    current = state(ada, newsletter)
    assert (current.status, current.withdrawn_at, current.last_event) == (
        "withdrawn",
        event.occurred_at,
        event,
    )
    page = client.get(response.url)
    assert page_messages(page) == ["Newsletter by email is off."]
    assert 'aria-checked="false"' in switch(page.content.decode(), newsletter, "email")
    assert list(ledger.verify()) == []


def test_switching_back_on_records_requested_and_confirmed_and_keeps_the_frequency(
    client, ada, newsletter, consent_texts
):
    post(client, ada, action="frequency", purpose=newsletter.pk, frequency="weekly")
    post(client, ada, action="consent", purpose=newsletter.pk, channel="email", enabled="0")
    # The wording changed since Ada first agreed: switching on agrees to the current version.
    current_text = publish_text(newsletter, statement="Yes, send me the newsletter, version 2")
    response = switch_on(client, ada, newsletter)
    assert response.status_code == 302
    requested, confirmed = events(ada)[-2:]
    for event, kind in ((requested, "requested"), (confirmed, "confirmed")):
        assert (event.kind, event.purpose, event.channel, event.source) == (
            kind,
            newsletter,
            "email",
            "preference_centre",
        )
        assert event.consent_text == current_text
        assert event.request_id is None
        assert event.evidence.submitted == {
            "action": "consent",
            "purpose": newsletter.pk,
            "channel": "email",
            "enabled": True,
            "consent_text": current_text.pk,
        }
        assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    assert requested.occurred_at == confirmed.occurred_at
    now_on = state(ada, newsletter)
    assert (now_on.status, now_on.consent_text, now_on.frequency) == ("active", current_text, "weekly")
    assert now_on.requested_at == now_on.confirmed_at == confirmed.occurred_at
    assert (now_on.withdrawn_at, now_on.last_event) == (None, confirmed)
    assert page_messages(client.get(response.url))[-1] == "Newsletter by email is on."
    assert selectors.has_active_consent(subscriber_id=ada.pk, purpose_id=newsletter.pk)
    assert list(ledger.verify()) == []


def test_an_old_agreement_shows_the_current_wording_and_its_version(client, ada, newsletter):
    publish_text(newsletter, use="A new use, worded anew.")
    html = client.get(prefs_url(ada)).content.decode()
    assert "A new use, worded anew." in html
    assert "(text version 1)" in html
    assert "The wording above is the current one, version 2." in html


def test_switching_on_something_new_is_active_at_once(client, ada, promotions, consent_texts):
    switch_on(client, ada, promotions)
    created = state(ada, promotions)
    assert (created.status, created.frequency, created.consent_text) == (
        "active",
        "every",
        consent_texts["promotions"],
    )
    assert [(e.kind, e.purpose.slug) for e in events(ada)[-2:]] == [
        ("requested", "promotions"),
        ("confirmed", "promotions"),
    ]
    assert list(ledger.verify()) == []


def test_switching_on_what_is_on_changes_nothing(client, ada, newsletter):
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    switch_on(client, ada, newsletter)
    assert_unchanged(ada, before)


def test_switching_on_a_consent_awaiting_confirmation_confirms_it(client, ada, promotions, consent_texts):
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["promotions"], channel=Channel.EMAIL)],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE),
    )
    html = client.get(prefs_url(ada)).content.decode()
    assert "waiting for you to confirm by email" in html
    switch_on(client, ada, promotions)
    assert state(ada, promotions).status == "active"
    # The emailed link, clicked later, finds nothing left to confirm.
    assert outcome.request is not None
    services.subscription_confirm(
        request_id=outcome.request.pk, evidence=Evidence(source=ConsentEvent.Source.CONFIRMATION_LINK)
    )
    assert [e.kind for e in events(ada) if e.purpose == promotions] == ["requested", "requested", "confirmed"]
    assert list(ledger.verify()) == []


def test_mail_by_post_needs_an_address_on_file(client, ada, newsletter):
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = switch_on(client, ada, newsletter, "postal")
    assert response.status_code == 400
    assert "Mail by post needs your full postal address." in response.content.decode()
    assert not ConsentState.objects.filter(subscriber=ada, channel="postal").exists()
    assert_unchanged(ada, before)

    post(client, ada, action="profile", name="Ada", **ADDRESS)
    switch_on(client, ada, newsletter, "postal")
    assert state(ada, newsletter, "postal").status == "active"


@pytest.mark.parametrize(
    "data",
    [
        {"purpose": "99999", "channel": "email", "enabled": "1"},
        {"purpose": "nonsense", "channel": "email", "enabled": "1"},
        {"channel": "email", "enabled": "0"},
        {"purpose": "NEWSLETTER", "channel": "fax", "enabled": "0"},
        {"purpose": "NEWSLETTER", "channel": "email", "enabled": "maybe"},
        {"purpose": "NEWSLETTER", "channel": "email"},
    ],
    ids=["unknown purpose", "not a number", "no purpose", "unknown channel", "bad switch", "no switch"],
)
def test_bad_switches_get_a_clear_answer_and_change_nothing(client, ada, newsletter, data):
    data = {k: (str(newsletter.pk) if v == "NEWSLETTER" else v) for k, v in data.items()}
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="consent", **data)
    assert response.status_code == 400
    assert "Nothing has been changed" in response.content.decode()
    assert state(ada, newsletter).status == "active"
    assert_unchanged(ada, before)


def test_a_purpose_no_longer_offered_can_be_switched_off_but_not_on(client, ada, newsletter):
    Purpose.objects.filter(pk=newsletter.pk).update(is_active=False)
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = switch_on(client, ada, newsletter, "postal")
    assert response.status_code == 400
    assert_unchanged(ada, before)
    post(client, ada, action="consent", purpose=newsletter.pk, channel="email", enabled="0")
    assert state(ada, newsletter).status == "withdrawn"
    # Withdrawn and no longer offered: nothing left to show or switch.
    html = client.get(prefs_url(ada)).content.decode()
    assert f'id="purpose-{newsletter.pk}"' not in html


def test_an_unknown_action_changes_nothing(client, ada):
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="delete-everything")
    assert response.status_code == 400
    assert "We didn&#x27;t understand that request." in response.content.decode()
    assert_unchanged(ada, before)


# --- Frequency and pauses ---------------------------------------------------------------


def test_setting_a_frequency_records_it(client, ada, newsletter):
    response = post(client, ada, action="frequency", purpose=newsletter.pk, frequency="monthly")
    assert response.status_code == 302
    (event,) = events(ada, "frequency_changed")
    assert (event.purpose, event.channel, event.source) == (newsletter, "email", "preference_centre")
    assert event.evidence.submitted == {
        "action": "frequency",
        "purpose": newsletter.pk,
        "frequency": "monthly",
        "previous": "every",
    }
    assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    assert state(ada, newsletter).frequency == "monthly"
    page = client.get(response.url)
    assert page_messages(page) == ["Newsletter: At most once a month."]
    assert re.search(r'<input[^>]*value="monthly"[^>]*checked', page.content.decode())
    assert list(ledger.verify()) == []


@pytest.mark.parametrize(
    "data",
    [
        {"purpose": "NEWSLETTER", "frequency": "daily"},
        {"purpose": "NEWSLETTER"},
        {"purpose": "99999", "frequency": "weekly"},
        {"purpose": "PROMOTIONS", "frequency": "weekly"},  # no email consent to tune
    ],
    ids=["bad frequency", "no frequency", "unknown purpose", "not subscribed"],
)
def test_bad_frequencies_change_nothing(client, ada, newsletter, promotions, data):
    ids = {"NEWSLETTER": str(newsletter.pk), "PROMOTIONS": str(promotions.pk)}
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="frequency", **{k: ids.get(v, v) for k, v in data.items()})
    assert response.status_code == 400
    assert "Nothing has been changed" in response.content.decode()
    assert state(ada, newsletter).frequency == "every"
    assert_unchanged(ada, before)


def test_pausing_for_three_months_and_ending_the_pause(client, ada):
    started = timezone.now()
    response = post(client, ada, action="pause", months="3")
    assert response.status_code == 302
    ada.refresh_from_db()
    assert started + timedelta(days=90) <= ada.paused_until <= timezone.now() + timedelta(days=90)
    (paused,) = events(ada, "paused")
    assert (paused.purpose, paused.channel, paused.consent_text, paused.source) == (
        None,
        "",
        None,
        "preference_centre",
    )
    assert paused.evidence.submitted == {
        "action": "pause",
        "months": 3,
        "until": ada.paused_until.isoformat(),
    }
    assert (paused.evidence.ip_address, paused.evidence.user_agent) == (IP, UA)
    page = client.get(response.url)
    until = f"{ada.paused_until:%-d %B %Y}"
    assert page_messages(page) == [f"Paused: we won't send you anything until {until}."]
    assert f"Paused until {until}." in page.content.decode()

    response = post(client, ada, action="resume")
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.paused_until is None
    (resumed,) = events(ada, "resumed")
    assert (resumed.purpose, resumed.channel, resumed.evidence.submitted) == (None, "", {"action": "resume"})
    page = client.get(response.url)
    assert page_messages(page) == ["The pause is over: you'll get what you've chosen again."]
    assert "Paused until" not in page.content.decode()
    # Ending a pause that is not there records nothing.
    post(client, ada, action="resume")
    assert len(events(ada, "resumed")) == 1
    assert list(ledger.verify()) == []


@pytest.mark.parametrize("months", ["12", "0", "-1", "three", ""])
def test_a_pause_lasts_one_three_or_six_months(client, ada, months):
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="pause", months=months)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Choose 1, 3 or 6 months." in html or "Choose how long to pause for." in html
    ada.refresh_from_db()
    assert ada.paused_until is None
    assert_unchanged(ada, before)


# --- Name and address -------------------------------------------------------------------


def test_a_profile_change_records_only_what_changed(client, ada):
    Subscriber.objects.filter(pk=ada.pk).update(name="Ada", city="Paris")
    data = {"name": "Ada Lovelace", **ADDRESS, "address_line2": "  "}
    response = post(client, ada, action="profile", **data)
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.name, ada.address_line1, ada.city, ada.address_line2) == (
        "Ada Lovelace",
        "12 Analytical Row",
        "London",
        "",
    )
    (event,) = events(ada, "profile_changed")
    assert (event.purpose, event.channel, event.consent_text, event.source) == (
        None,
        "",
        None,
        "preference_centre",
    )
    assert event.evidence.submitted == {
        "name": "Ada Lovelace",
        "address_line1": "12 Analytical Row",
        "postal_code": "N1 7AA",
        "city": "London",
        "country": "United Kingdom",
    }
    assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    assert page_messages(client.get(response.url)) == ["Your name and address are saved."]

    post(client, ada, action="profile", **data)
    assert len(events(ada, "profile_changed")) == 1
    assert list(ledger.verify()) == []


@pytest.mark.parametrize(
    "field, value",
    [("name", "A" * 151), ("address_line1", "x" * 201), ("postal_code", "1" * 21), ("city", "Lon\ndon")],
)
def test_bad_profile_input_gets_a_field_error(client, ada, field, value):
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="profile", **{**ADDRESS, "name": "Ada", field: value})
    assert response.status_code == 400
    assert response.context["profile_form"].errors[field]
    assert 'aria-invalid="true"' in response.content.decode() or "is-invalid" in response.content.decode()
    ada.refresh_from_db()
    assert (ada.name, ada.city) == ("", "")
    assert_unchanged(ada, before)


def test_the_address_stays_while_mail_by_post_is_on(client, ada, newsletter):
    post(client, ada, action="profile", name="Ada", **ADDRESS)
    switch_on(client, ada, newsletter, "postal")
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="profile", name="Ada", **{**ADDRESS, "city": ""})
    assert response.status_code == 400
    assert "keep a full address, or switch mail by post off first" in response.content.decode()
    ada.refresh_from_db()
    assert ada.city == "London"
    assert_unchanged(ada, before)

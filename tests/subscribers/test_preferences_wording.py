"""Switching on agrees to the wording the page showed, never to one published after it opened."""

from __future__ import annotations

import re
from html import unescape

import pytest

from subscribers import ledger, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, ConsentText, Purpose, Subscriber
from tests.factories import publish_text
from tests.subscribers.test_preferences import IP, UA, events, post, prefs_url

pytestmark = pytest.mark.django_db

CHANGED = (
    "The wording for Promotions changed since you opened this page. Please read it again "
    "and switch it on if you still want it."
)


@pytest.fixture
def ada(confirmed_subscriber) -> Subscriber:
    return confirmed_subscriber


@pytest.fixture
def promotions() -> Purpose:
    return Purpose.objects.get(slug="promotions")


def switch_form(html: str, purpose: Purpose, channel: str) -> dict[str, str]:
    """The hidden fields of the form around one switch, as the browser would send them."""
    form = re.search(rf'<form[^>]*>(?:(?!</form>).)*id="switch-{purpose.pk}-{channel}".*?</form>', html, re.S)
    assert form, f"no switch form for {purpose.slug} {channel}"
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.group(0))
    return {name: value for name, value in fields if name != "csrfmiddlewaretoken"}


def test_a_switch_that_is_off_sends_the_version_it_shows(client, ada, promotions, consent_texts):
    newsletter = consent_texts["newsletter"].purpose
    html = client.get(prefs_url(ada)).content.decode()
    assert switch_form(html, promotions, "email") == {
        "action": "consent",
        "purpose": str(promotions.pk),
        "channel": "email",
        "enabled": "1",
        "consent_text": str(consent_texts["promotions"].pk),
    }
    # Switching off agrees to nothing: no version is sent, none is recorded as submitted.
    assert "consent_text" not in switch_form(html, newsletter, "email")


def test_wording_published_after_the_page_opened_is_not_agreed_to(client, ada, promotions, consent_texts):
    shown = switch_form(client.get(prefs_url(ada)).content.decode(), promotions, "email")
    new = publish_text(promotions, statement="Yes, send me promotions, shared with our partners")
    before = ConsentEvent.objects.filter(subscriber=ada).count()

    response = post(client, ada, **shown)

    assert response.status_code == 400
    assert ConsentEvent.objects.filter(subscriber=ada).count() == before
    assert not ConsentState.objects.filter(subscriber=ada, purpose=promotions).exists()
    assert not selectors.has_active_consent(subscriber_id=ada.pk, purpose_id=promotions.pk)
    html = unescape(response.content.decode())
    assert CHANGED in html
    assert "Nothing has been changed" in html
    # The page now shows the new wording, and its switch sends that version.
    assert "Switching on means: “Yes, send me promotions, shared with our partners”" in html
    assert switch_form(response.content.decode(), promotions, "email")["consent_text"] == str(new.pk)

    # Having read it, Ada switches it on: she agrees to exactly what she read.
    again = switch_form(response.content.decode(), promotions, "email")
    assert post(client, ada, **again).status_code == 302
    requested, confirmed = events(ada)[-2:]
    for event in (requested, confirmed):
        assert (event.purpose, event.channel, event.source, event.actor) == (
            promotions,
            "email",
            "preference_centre",
            "subscriber",
        )
        assert event.consent_text_id == new.pk
        assert ConsentText.objects.get(pk=event.consent_text_id).digest == ledger.text_digest(new)
        assert event.evidence.submitted["consent_text"] == new.pk
        assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
    state = ConsentState.objects.get(subscriber=ada, purpose=promotions, channel="email")
    assert (state.status, state.consent_text_id) == ("active", new.pk)
    assert list(ledger.verify()) == []


@pytest.mark.parametrize("sent", [None, "0", "99999999"], ids=["missing", "zero", "unknown"])
def test_switching_on_without_the_shown_version_records_nothing(client, ada, promotions, sent):
    data = {"action": "consent", "purpose": promotions.pk, "channel": "email", "enabled": "1"}
    if sent is not None:
        data["consent_text"] = sent
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, **data)
    assert response.status_code == 400
    assert CHANGED in unescape(response.content.decode())
    assert ConsentEvent.objects.filter(subscriber=ada).count() == before
    assert not ConsentState.objects.filter(subscriber=ada, purpose=promotions).exists()


def test_the_service_refuses_a_superseded_version(ada, promotions, consent_texts):
    publish_text(promotions, use="A new use.")
    before = ConsentEvent.objects.filter(subscriber=ada).count()
    with pytest.raises(services.PreferenceError) as raised:
        services.consent_opt_in(
            subscriber=ada,
            purpose=promotions,
            channel=Channel.EMAIL,
            consent_text_id=consent_texts["promotions"].pk,
            evidence=Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE),
        )
    assert raised.value.reason == "text_changed"
    assert ConsentEvent.objects.filter(subscriber=ada).count() == before

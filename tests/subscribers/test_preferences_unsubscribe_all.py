"""The preference centre's "Unsubscribe from everything": every switch off in one press."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.test import Client

from subscribers import ledger, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, Purpose, Subscriber
from tests.subscribers.test_preferences import ADDRESS, IP, UA, events, page_messages, post, prefs_url
from tests.subscribers.test_preferences_wording import switch_form

pytestmark = pytest.mark.django_db

EVERYTHING_OFF = (
    "You're unsubscribed from everything: we won't send you anything, by email or by post. "
    "To get something again, switch it on below."
)


@pytest.fixture
def ada(confirmed_subscriber, consent_texts) -> Subscriber:
    """Every switch on, except product information by post, which awaits confirmation."""
    ada = confirmed_subscriber
    Subscriber.objects.filter(pk=ada.pk).update(**ADDRESS)
    web = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE)
    pending = (consent_texts["product-information"].purpose, Channel.POSTAL)
    for text in consent_texts.values():
        for channel in text.purpose.channels:
            if (text.purpose, channel) != pending:
                services.consent_opt_in(
                    subscriber=ada,
                    purpose=text.purpose,
                    channel=channel,
                    consent_text_id=text.pk,
                    evidence=web,
                )
    services.subscriber_sign_up(
        email=ada.email,
        choices=[
            services.ConsentChoice(consent_text=consent_texts["product-information"], channel=Channel.POSTAL)
        ],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE),
    )
    return ada


def switches(html: str) -> list[str]:
    return re.findall(r'<button[^>]*role="switch"[^>]*>', html)


def reachable(subscriber: Subscriber) -> list[tuple[str, str]]:
    """Every purpose and channel the sending selector would still contact this subscriber for."""
    return [
        (purpose.slug, str(channel))
        for purpose in Purpose.objects.all()
        for channel in Channel
        if selectors.sendable_consents(purpose_id=purpose.pk, channel=channel).filter(subscriber=subscriber)
    ]


def test_the_page_offers_it_clearly_labelled(client, ada):
    html = client.get(prefs_url(ada)).content.decode()
    form = re.search(r'<form[^>]*id="unsubscribe-all-form".*?</form>', html, re.S)
    assert form, "no unsubscribe-all form"
    assert 'name="action" value="unsubscribe_all"' in form.group(0)
    assert re.search(r"<button[^>]*>Unsubscribe from everything</button>", form.group(0))


def test_one_press_withdraws_every_consent_with_the_evidence_of_the_press(client, ada, consent_texts):
    grace = services.subscriber_sign_up(
        email="grace@example.org",
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=Evidence(source=ConsentEvent.Source.SIGNUP_PAGE),
    )
    assert grace.request is not None
    services.subscription_confirm(
        request_id=grace.request.pk, evidence=Evidence(source=ConsentEvent.Source.CONFIRMATION_LINK)
    )
    before = {
        (s.purpose.slug, s.channel): (s.status, s.consent_text_id)
        for s in ConsentState.objects.filter(subscriber=ada).select_related("purpose")
    }
    assert sorted(status for status, _text in before.values()) == ["active"] * 6 + ["pending"]
    assert len(reachable(ada)) == 6
    url = prefs_url(ada)

    response = client.post(url, {"action": "unsubscribe_all"}, HTTP_USER_AGENT=UA, REMOTE_ADDR=IP)

    assert response.status_code == 302
    assert response.url == url
    after = ConsentState.objects.filter(subscriber=ada).select_related("purpose", "last_event")
    assert {(s.purpose.slug, s.channel): s.status for s in after} == {key: "withdrawn" for key in before}
    withdrawn = events(ada, "withdrawn")
    assert sorted((e.purpose.slug, e.channel) for e in withdrawn) == sorted(before)
    for event in withdrawn:
        assert (event.source, event.actor) == ("preference_centre", "subscriber")
        # Each withdrawal names the wording that consent was given (or asked) under.
        assert event.consent_text_id == before[(event.purpose.slug, event.channel)][1]
        assert event.evidence.submitted == {"action": "unsubscribe_all"}
        assert (event.evidence.ip_address, event.evidence.user_agent) == (IP, UA)
        assert event.evidence.page_url == "http://testserver/preferences/<token>/"
    for state in after:
        assert state.last_event in withdrawn
        assert state.withdrawn_at == state.last_event.occurred_at
    # Nobody sends to her again, for any purpose, on any channel; opens are not noted.
    assert reachable(ada) == []
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == set()
    assert not selectors.active_consents(subscriber=ada).exists()
    # Only hers.
    assert reachable(grace.subscriber) == [("newsletter", "email")]
    assert list(ledger.verify()) == []

    page = client.get(response.url)
    assert page_messages(page) == [EVERYTHING_OFF]
    html = page.content.decode()
    assert len(switches(html)) == 7
    assert all('aria-checked="false"' in s for s in switches(html))
    assert "Everything is off:" in html
    assert 'id="unsubscribe-all-form"' not in html
    # The way back is each switch: it is there, and sends the wording it shows.
    promotions = consent_texts["promotions"]
    assert switch_form(html, promotions.purpose, "email")["consent_text"] == str(promotions.pk)


def test_pressing_it_again_records_nothing(client, ada):
    client.get(post(client, ada, action="unsubscribe_all").url)  # its message, read
    count = ConsentEvent.objects.filter(subscriber=ada).count()
    response = post(client, ada, action="unsubscribe_all")
    assert response.status_code == 302
    assert ConsentEvent.objects.filter(subscriber=ada).count() == count
    assert page_messages(client.get(response.url)) == ["Nothing was switched on: we send you nothing."]


def test_it_needs_the_csrf_token(ada):
    response = Client(enforce_csrf_checks=True).post(prefs_url(ada), {"action": "unsubscribe_all"})
    assert response.status_code == 403
    assert len(selectors.active_consents(subscriber=ada)) == 6
    assert "Unsubscribe from everything" not in unescape(response.content.decode())

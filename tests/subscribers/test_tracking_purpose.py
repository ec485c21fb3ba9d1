"""Consent to open and click tracking: a purpose of its own, asked for and recorded like the
others, switched in the preference centre, and never a reason to send anyone anything."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from subscribers import links, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState, Purpose, Subscriber
from tests.subscribers.test_preferences import post, prefs_url, switch_on

pytestmark = pytest.mark.django_db

SIGNUP_URL = reverse("subscribers:signup")
WEB = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130")


@pytest.fixture
def tracking(consent_texts) -> Purpose:
    return consent_texts["email-tracking"].purpose


def confirm_url_from(message) -> str:
    found = re.search(r"https?://\S+/confirm/\S+/", message.body)
    assert found, message.body
    return found.group(0)


def sign_up(email: str, *texts, confirm: bool = True) -> Subscriber:
    outcome = services.subscriber_sign_up(
        email=email,
        choices=[services.ConsentChoice(consent_text=t, channel=Channel.EMAIL) for t in texts],
        evidence=WEB,
    )
    if confirm and outcome.request:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=WEB)
    return Subscriber.objects.get(pk=outcome.subscriber.pk)


def mailable(purpose: Purpose) -> set[int]:
    return set(selectors.sendable_consents(purpose_id=purpose.pk).values_list("subscriber_id", flat=True))


# --- The purpose ------------------------------------------------------------------------


def test_one_tracking_purpose_is_seeded_and_offers_email_only(seeded):
    tracking = Purpose.objects.get(kind=Purpose.Kind.TRACKING)
    assert (tracking.slug, tracking.name) == ("email-tracking", "Help us improve our emails")
    assert tracking.channels == [Channel.EMAIL]
    assert set(Purpose.objects.exclude(pk=tracking.pk).values_list("kind", flat=True)) == {"mailing"}


def test_the_database_keeps_tracking_to_one_email_only_purpose(tracking):
    with pytest.raises(IntegrityError), transaction.atomic():
        Purpose.objects.filter(pk=tracking.pk).update(offers_postal=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Purpose.objects.create(slug="more-tracking", name="More", description="x", kind="tracking")
    # The admin form leaves ``kind`` out (it is not editable); the model still says why.
    tracking.offers_postal = True
    with pytest.raises(ValidationError) as refused:
        tracking.full_clean()
    assert refused.value.message_dict["offers_postal"] == [
        "Noting opens and clicks is offered by email only."
    ]


# --- Signup and double opt-in -----------------------------------------------------------


def test_signup_shows_it_as_its_own_unticked_choice_with_its_full_text(client, consent_texts):
    text = consent_texts["email-tracking"]
    html = client.get(SIGNUP_URL).content.decode()
    box = re.search(rf'<input[^>]*name="consent_{text.pk}_email"[^>]*>', html)
    assert box is not None and "checked" not in box.group(0)
    assert f"consent_{text.pk}_postal" not in html  # email only
    for part in (text.statement, text.data_collected, text.use, text.retention, text.withdrawal):
        assert part in html
    assert "This is not a mailing: it sends you nothing." in html
    # Its label is its statement, with no "(by email)" as if it were a kind of mail.
    label = re.search(rf'<label[^>]*for="id_consent_{text.pk}_email"[^>]*>\s*(.*?)\s*</label>', html, re.S)
    assert label is not None and label.group(1) == text.statement
    news = consent_texts["newsletter"]
    assert f"{news.statement} (by email)" in html


def test_signing_up_for_it_goes_through_double_opt_in_like_the_others(client, consent_texts, mailoutbox):
    news, track = consent_texts["newsletter"], consent_texts["email-tracking"]
    data = {"email": "ada@example.org", f"consent_{news.pk}_email": "on", f"consent_{track.pk}_email": "on"}
    assert client.post(SIGNUP_URL, data).status_code == 302
    ada = Subscriber.objects.get(email="ada@example.org")
    pending = ConsentState.objects.get(subscriber=ada, purpose=track.purpose)
    assert (pending.status, pending.consent_text) == (ConsentState.Status.PENDING, track)
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == set()
    assert "Help us improve our emails" in mailoutbox[0].body

    client.post(confirm_url_from(mailoutbox[0]))

    confirmed = ConsentEvent.objects.get(subscriber=ada, purpose=track.purpose, kind="confirmed")
    assert (confirmed.channel, confirmed.consent_text) == (Channel.EMAIL, track)
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == {ada.pk}


def test_tracking_alone_is_not_a_signup(client, consent_texts, mailoutbox):
    track = consent_texts["email-tracking"]
    response = client.post(SIGNUP_URL, {"email": "ada@example.org", f"consent_{track.pk}_email": "on"})
    assert response.status_code == 400
    assert "tick at least one kind of mail too" in response.content.decode()
    assert not Subscriber.objects.exists()
    assert mailoutbox == []


# --- Preference centre ------------------------------------------------------------------


def test_the_preference_centre_switches_it_on_and_off(client, confirmed_subscriber, tracking):
    ada = confirmed_subscriber
    html = client.get(prefs_url(ada)).content.decode()
    switch = re.search(rf'<button[^>]*id="switch-{tracking.pk}-email"[^>]*>', html)
    assert switch is not None and 'aria-checked="false"' in switch.group(0)
    assert "Help us improve our emails: note opens and clicks" in html

    response = switch_on(client, ada, tracking)
    assert response.status_code == 302
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == {ada.pk}
    page = client.get(prefs_url(ada)).content.decode()
    assert "Help us improve our emails is on." in page
    # It sends nothing, so there is no "how often" for it; the newsletter keeps its own.
    assert f'id="frequency-form-{tracking.pk}"' not in page
    newsletter = Purpose.objects.get(slug="newsletter")
    assert f'id="frequency-form-{newsletter.pk}"' in page

    post(client, ada, action="consent", purpose=tracking.pk, channel="email", enabled="0")
    withdrawn = ConsentEvent.objects.filter(subscriber=ada, purpose=tracking).latest("seq")
    assert (withdrawn.kind, withdrawn.source) == ("withdrawn", "preference_centre")
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == set()


def test_a_frequency_for_tracking_is_refused(client, confirmed_subscriber, tracking):
    ada = confirmed_subscriber
    switch_on(client, ada, tracking)
    response = post(client, ada, action="frequency", purpose=tracking.pk, frequency="weekly")
    assert response.status_code == 400
    assert ConsentState.objects.get(subscriber=ada, purpose=tracking).frequency == "every"


def test_leaving_everything_stops_tracking_too(client, consent_texts):
    ada = sign_up("ada@example.org", consent_texts["newsletter"], consent_texts["email-tracking"])
    news = consent_texts["newsletter"].purpose
    url = reverse("subscribers:unsubscribe", args=[links.make("unsubscribe", ada.pk, news.pk)])
    page = client.post(url, {"confirm": "1", "everything": "1"}).content.decode()
    assert "We no longer note whether you open our emails or which links you click." in page
    assert selectors.trackable_subscriber_ids(subscriber_ids=[ada.pk]) == set()


# --- The selector -----------------------------------------------------------------------


def test_trackable_ids_are_those_with_active_tracking_consent_and_an_address(
    consent_texts, django_assert_num_queries
):
    news, track = consent_texts["newsletter"], consent_texts["email-tracking"]
    agreed = sign_up("agreed@example.org", news, track)
    also = sign_up("also@example.org", news, track)
    pending = sign_up("pending@example.org", news, track, confirm=False)
    declined = sign_up("declined@example.org", news)
    withdrew = sign_up("withdrew@example.org", news, track)
    services.consent_withdraw(subscriber=withdrew, purpose=track.purpose, channel=Channel.EMAIL, evidence=WEB)
    erased = sign_up("erased@example.org", news, track)
    staff = Evidence(source=ConsentEvent.Source.ADMIN, actor=ConsentEvent.Actor.STAFF, actor_label="carl")
    services.subscriber_erase(subscriber=erased, evidence=staff)
    everyone = [agreed.pk, also.pk, pending.pk, declined.pk, withdrew.pk, erased.pk, 999_999]

    with django_assert_num_queries(1):
        found = selectors.trackable_subscriber_ids(subscriber_ids=everyone)
    assert found == {agreed.pk, also.pk}
    assert selectors.trackable_subscriber_ids(subscriber_ids=[agreed.pk]) == {agreed.pk}
    with django_assert_num_queries(0):
        assert selectors.trackable_subscriber_ids(subscriber_ids=[]) == set()


def test_tracking_consent_is_never_a_reason_to_send(consent_texts, tracking):
    news = consent_texts["newsletter"]
    reader = sign_up("reader@example.org", news)
    sign_up("tracked@example.org", news, consent_texts["email-tracking"])
    before = mailable(news.purpose)
    breakdown = selectors.audience_breakdown(purpose_id=news.purpose.pk)
    services.consent_opt_in(
        subscriber=reader,
        purpose=tracking,
        channel=Channel.EMAIL,
        consent_text_id=consent_texts["email-tracking"].pk,
        evidence=WEB,
    )

    after = mailable(news.purpose)
    assert after == before and len(after) == 2
    assert selectors.audience_breakdown(purpose_id=news.purpose.pk) == breakdown


def test_the_proof_of_consent_shows_the_tracking_text_in_full(consent_texts):
    track = consent_texts["email-tracking"]
    ada = sign_up("ada@example.org", consent_texts["newsletter"], track)
    proof = selectors.consent_proof(subscriber=ada)
    current = {c["purpose"]: c for c in proof["current"]}
    assert current["email-tracking"]["status"] == "active"
    assert current["email-tracking"]["purpose_kind"] == "tracking"
    assert current["newsletter"]["purpose_kind"] == "mailing"
    shown = next(t for t in proof["consent_texts"] if t["purpose"] == "email-tracking")
    assert (shown["statement"], shown["version"]) == (track.statement, track.version)
    assert proof["ledger_verified"]

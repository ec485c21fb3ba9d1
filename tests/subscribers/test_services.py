"""Signup, double opt-in, withdrawal and expiry: the records each one leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from subscribers import ledger, selectors, services
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConfirmationRequest,
    ConsentEvent,
    ConsentState,
    Subscriber,
    Suppression,
)
from tests.factories import publish_text

pytestmark = pytest.mark.django_db

SIGNUP = Evidence(
    source=ConsentEvent.Source.SIGNUP_PAGE,
    ip_address="203.0.113.7",
    user_agent="Mozilla/5.0 (signup)",
    page_url="https://news.example.com/",
    submitted={"email": "ada@example.org"},
)
CLICK = Evidence(
    source=ConsentEvent.Source.CONFIRMATION_LINK, ip_address="198.51.100.9", user_agent="Mozilla/5.0 (phone)"
)


def choose(*texts, channel=Channel.EMAIL):
    return [services.ConsentChoice(consent_text=t, channel=channel) for t in texts]


def kinds(subscriber):
    return list(
        ConsentEvent.objects.filter(subscriber=subscriber)
        .order_by("seq")
        .values_list("kind", "purpose__slug")
    )


def test_signup_records_a_request_per_choice_and_nothing_is_active_yet(consent_texts, mailoutbox):
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        name="Ada",
        choices=choose(consent_texts["newsletter"], consent_texts["promotions"]),
        evidence=SIGNUP,
    )
    assert kinds(outcome.subscriber) == [("requested", "newsletter"), ("requested", "promotions")]
    assert set(ConsentState.objects.values_list("status", flat=True)) == {"pending"}
    assert not selectors.has_active_consent(
        subscriber_id=outcome.subscriber.pk, purpose_id=consent_texts["newsletter"].purpose_id
    )
    event = ConsentEvent.objects.filter(subscriber=outcome.subscriber).first()
    assert event.consent_text == consent_texts["newsletter"]
    assert (event.evidence.ip_address, event.evidence.user_agent) == ("203.0.113.7", "Mozilla/5.0 (signup)")
    assert event.evidence.page_url == "https://news.example.com/"
    # The name waits for confirmation: nobody can rename someone by signing up with their address.
    assert outcome.subscriber.name == ""
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ada@example.org"]


def test_confirmation_activates_with_its_own_evidence(consent_texts):
    outcome = services.subscriber_sign_up(
        email="ada@example.org", name="Ada", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    returned = services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    # What the confirmation page needs comes back with it: the request, and the person as confirmed.
    assert (returned.pk, returned.confirmed_at is not None) == (outcome.request.pk, True)
    assert (returned.subscriber.pk, returned.subscriber.name) == (outcome.subscriber.pk, "Ada")
    state = ConsentState.objects.get(subscriber=outcome.subscriber)
    assert state.status == ConsentState.Status.ACTIVE
    assert state.consent_text == consent_texts["newsletter"]
    confirmed = ConsentEvent.objects.get(subscriber=outcome.subscriber, kind="confirmed")
    assert confirmed.request_id == outcome.request.pk
    assert (confirmed.evidence.ip_address, confirmed.evidence.user_agent) == (
        "198.51.100.9",
        "Mozilla/5.0 (phone)",
    )
    outcome.subscriber.refresh_from_db()
    assert outcome.subscriber.name == "Ada"
    assert selectors.has_active_consent(
        subscriber_id=outcome.subscriber.pk, purpose_id=consent_texts["newsletter"].purpose_id
    )


def test_a_link_confirms_once(consent_texts):
    outcome = services.subscriber_sign_up(
        email="ada@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    with pytest.raises(services.ConfirmationError) as err:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    assert err.value.reason == "already_confirmed"
    assert ConsentEvent.objects.filter(kind="confirmed").count() == 1


def test_expired_request_cannot_confirm_and_is_closed_in_the_ledger(consent_texts, settings):
    outcome = services.subscriber_sign_up(
        email="ada@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    later = timezone.now() + timedelta(days=settings.CONFIRMATION_EXPIRY_DAYS, minutes=1)
    ConfirmationRequest.objects.filter(pk=outcome.request.pk).update(expires_at=timezone.now())
    with pytest.raises(services.ConfirmationError) as err:
        services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    assert err.value.reason == "expired"
    assert services.confirmations_expire(now=later) == 1
    assert services.confirmations_expire(now=later) == 0
    # The address never agreed to anything: it is forgotten, as the pages promise.
    assert kinds(outcome.subscriber) == [
        ("requested", "newsletter"),
        ("expired", "newsletter"),
        ("erased", None),
    ]
    assert ConsentState.objects.get().status == ConsentState.Status.EXPIRED
    assert list(ledger.verify()) == []


def test_an_expired_request_is_deleted_and_an_address_that_never_agreed_is_forgotten(
    consent_texts, settings, mailoutbox
):
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        name="Ada",
        postal_address={"city": "London"},
        choices=choose(consent_texts["newsletter"]),
        evidence=SIGNUP,
    )
    later = timezone.now() + timedelta(days=settings.CONFIRMATION_EXPIRY_DAYS, minutes=1)
    assert services.confirmations_expire(now=later) == 1
    ada = Subscriber.objects.get(pk=outcome.subscriber.pk)
    assert (ada.email, ada.email_hash, ada.erased_at is not None) == (None, "", True)
    assert ConfirmationRequest.objects.get().profile == {}
    requested = ConsentEvent.objects.get(kind="requested").evidence
    assert (requested.ip_address, requested.user_agent, requested.page_url, requested.submitted) == (
        None,
        "",
        "",
        {},
    )
    # No hash kept either: nothing was ever sent but the request to confirm.
    assert not Suppression.objects.exists()
    assert list(ledger.verify()) == []
    # The owner can still sign up and confirm later.
    again = services.subscriber_sign_up(
        email="ada@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    services.subscription_confirm(request_id=again.request.pk, evidence=CLICK)
    assert again.subscriber.pk != ada.pk
    assert selectors.has_active_consent(
        subscriber_id=again.subscriber.pk, purpose_id=consent_texts["newsletter"].purpose_id
    )


def test_a_subscriber_keeps_what_they_agreed_to_when_a_later_request_expires(consent_texts, settings):
    first = services.subscriber_sign_up(
        email="ada@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    services.subscription_confirm(request_id=first.request.pk, evidence=CLICK)
    second = services.subscriber_sign_up(
        email="ada@example.org",
        name="Someone Else",
        choices=choose(consent_texts["promotions"]),
        evidence=SIGNUP,
    )
    later = timezone.now() + timedelta(days=settings.CONFIRMATION_EXPIRY_DAYS, minutes=1)
    assert services.confirmations_expire(now=later) == 1
    ada = Subscriber.objects.get(pk=first.subscriber.pk)
    assert ada.email == "ada@example.org" and ada.erased_at is None
    statuses = dict(ConsentState.objects.values_list("purpose__slug", "status"))
    assert statuses == {"newsletter": "active", "promotions": "expired"}
    assert ConfirmationRequest.objects.get(pk=second.request.pk).profile == {}
    kept = ConsentEvent.objects.get(kind="requested", purpose__slug="newsletter").evidence
    gone = ConsentEvent.objects.get(kind="requested", purpose__slug="promotions").evidence
    assert (kept.ip_address, kept.erased_at) == ("203.0.113.7", None)
    assert (gone.ip_address, gone.submitted) == (None, {})
    assert list(ledger.verify()) == []


def test_signing_up_again_when_already_subscribed_changes_nothing_and_emails(consent_texts, mailoutbox):
    first = services.subscriber_sign_up(
        email="ada@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    services.subscription_confirm(request_id=first.request.pk, evidence=CLICK)
    mailoutbox.clear()
    again = services.subscriber_sign_up(
        email="ADA@example.org", choices=choose(consent_texts["newsletter"]), evidence=SIGNUP
    )
    assert again.request is None
    assert again.subscriber.pk == first.subscriber.pk
    assert kinds(first.subscriber) == [("requested", "newsletter"), ("confirmed", "newsletter")]
    assert len(mailoutbox) == 1
    assert "already" in mailoutbox[0].subject.lower() or "already" in mailoutbox[0].body.lower()


def test_withdrawn_subscriber_signs_up_again_through_double_opt_in(consent_texts):
    text = consent_texts["newsletter"]
    first = services.subscriber_sign_up(email="ada@example.org", choices=choose(text), evidence=SIGNUP)
    services.subscription_confirm(request_id=first.request.pk, evidence=CLICK)
    services.consent_withdraw(
        subscriber=first.subscriber,
        purpose=text.purpose,
        channel=Channel.EMAIL,
        evidence=Evidence(
            source=ConsentEvent.Source.ADMIN, actor=ConsentEvent.Actor.STAFF, actor_label="clara"
        ),
    )
    again = services.subscriber_sign_up(email="ada@example.org", choices=choose(text), evidence=SIGNUP)
    assert ConsentState.objects.get().status == ConsentState.Status.PENDING
    services.subscription_confirm(request_id=again.request.pk, evidence=CLICK)
    assert kinds(first.subscriber) == [
        ("requested", "newsletter"),
        ("confirmed", "newsletter"),
        ("withdrawn", "newsletter"),
        ("requested", "newsletter"),
        ("confirmed", "newsletter"),
    ]
    assert ConsentState.objects.get().status == ConsentState.Status.ACTIVE
    assert list(ledger.verify()) == []


def test_withdrawal_before_confirming_wins_over_a_late_click(consent_texts):
    text = consent_texts["newsletter"]
    outcome = services.subscriber_sign_up(email="ada@example.org", choices=choose(text), evidence=SIGNUP)
    services.consent_withdraw(
        subscriber=outcome.subscriber, purpose=text.purpose, channel=Channel.EMAIL, evidence=SIGNUP
    )
    services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    assert ConsentState.objects.get().status == ConsentState.Status.WITHDRAWN
    assert not ConsentEvent.objects.filter(kind="confirmed").exists()


def test_editing_a_text_publishes_a_new_version_and_the_ledger_keeps_the_old(consent_texts):
    old = consent_texts["newsletter"]
    outcome = services.subscriber_sign_up(email="ada@example.org", choices=choose(old), evidence=SIGNUP)
    new = publish_text(old.purpose, frequency="Every week.")
    assert (old.version, new.version) == (1, 2)
    old.refresh_from_db()
    assert old.frequency == "About once a month."
    assert ConsentEvent.objects.get(subscriber=outcome.subscriber).consent_text_id == old.pk
    assert selectors.signup_offers()[0].text == new


def test_texts_in_another_language_are_their_own_series(consent_texts):
    purpose = consent_texts["newsletter"].purpose
    german = publish_text(purpose, language="de", statement="Ja, schickt mir den Newsletter")
    assert german.version == 1
    offers = {o.purpose.slug: o.text for o in selectors.signup_offers(language="de")}
    assert offers["newsletter"] == german
    assert offers["promotions"] == consent_texts["promotions"]  # falls back to the default language


def test_postal_choice_keeps_the_address_until_confirmed(consent_texts):
    address = {
        "address_line1": "1 Main St",
        "address_line2": "",
        "postal_code": "12345",
        "city": "Springfield",
        "country": "US",
    }
    outcome = services.subscriber_sign_up(
        email="ada@example.org",
        choices=choose(consent_texts["promotions"], channel=Channel.POSTAL),
        postal_address=address,
        evidence=SIGNUP,
    )
    assert Subscriber.objects.get().city == ""
    services.subscription_confirm(request_id=outcome.request.pk, evidence=CLICK)
    subscriber = Subscriber.objects.get()
    assert (subscriber.address_line1, subscriber.city) == ("1 Main St", "Springfield")
    assert ConsentState.objects.get().channel == Channel.POSTAL

"""Erasure (``services.subscriber_erase``): nothing personal left, the chain intact, never
mailed again unless the owner signs up anew and confirms."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from marketing.models import Delivery, DeliveryEvent
from subscribers import exports, ledger, selectors, services, tokens
from subscribers.ledger import Evidence
from subscribers.models import (
    Channel,
    ConfirmationRequest,
    ConsentEvent,
    ConsentEvidence,
    ConsentState,
    EmailChangeRequest,
    Subscriber,
    Suppression,
)
from tests.subscribers.rights_helpers import (
    EMAIL,
    PERSONAL,
    Ada,
    dump,
    link_in,
    make_ada,
    sign_up,
    web,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(consent_texts, settings, mailoutbox) -> Ada:
    return make_ada(consent_texts, settings, mailoutbox)


BY_SUBSCRIBER = Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE, actor=ConsentEvent.Actor.SUBSCRIBER)


def erase(subscriber: Subscriber) -> ConsentEvent:
    return services.subscriber_erase(subscriber=subscriber, evidence=BY_SUBSCRIBER)


def sendable_ids(purpose_id: int) -> set[int]:
    return set(selectors.sendable_consents(purpose_id=purpose_id).values_list("subscriber_id", flat=True))


def test_before_erasure_the_personal_data_is_where_the_checks_look(ada):
    subscriber = ada.subscriber
    assert EMAIL in Delivery.objects.get(campaign=ada.refused, subscriber=subscriber).error
    assert ConfirmationRequest.objects.filter(subscriber=subscriber).exclude(profile={}).exists()
    everything = dump("subscribers", "marketing", "admin")
    assert all(value in everything for value in PERSONAL)


def bounce_events(subscriber: Subscriber, delivery: Delivery) -> None:
    """A provider's bounce for the delivery, and one it never matched to a delivery."""
    for n, matched in enumerate((delivery, None)):
        DeliveryEvent.objects.create(
            delivery=matched,
            esp_name="mailgun",
            event_type="bounced",
            bounce="hard",
            recipient_hash=subscriber.email_hash,
            recipient_domain="lovelace.example",  # a personal domain names its owner
            mta_response=f"550 5.1.1 <{EMAIL}>: no such user",
            occurred_at=timezone.now(),
            dedupe_key=f"bounce-{n}",
        )


def test_erasure_leaves_no_address_name_ip_or_user_agent_anywhere(ada):
    subscriber = ada.subscriber
    address_hash = subscriber.email_hash
    bounce_events(subscriber, Delivery.objects.get(campaign=ada.refused, subscriber=subscriber))
    event = erase(subscriber)
    subscriber.refresh_from_db()
    assert (subscriber.email, subscriber.email_hash, subscriber.name) == (None, "", "")
    assert subscriber.postal_address == ""
    assert subscriber.erased_at == event.occurred_at
    assert subscriber.link_generation == 2
    others = ConsentEvidence.objects.filter(event__subscriber=subscriber).exclude(event=event)
    assert others.count() == 8  # 5 before, 3 withdrawals
    assert list(
        others.values_list("ip_address", "user_agent", "page_url", "submitted", "salt").distinct()
    ) == [(None, "", "", {}, "")]
    assert not others.filter(erased_at__isnull=True).exists()
    assert list(
        ConfirmationRequest.objects.filter(subscriber=subscriber).values_list("profile", flat=True)
    ) == [
        {},
        {},
    ]
    assert not ConfirmationRequest.objects.filter(
        subscriber=subscriber, expired_at__isnull=True, confirmed_at__isnull=True
    ).exists()
    assert not EmailChangeRequest.objects.filter(subscriber=subscriber).exists()
    assert list(Delivery.objects.filter(subscriber=subscriber).values_list("error", flat=True)) == ["", ""]
    assert list(
        DeliveryEvent.objects.values_list("recipient_hash", "recipient_domain", "mta_response").distinct()
    ) == [("", "", "")]
    # And nowhere else in either app's tables (nor the admin's history).
    everything = dump("subscribers", "marketing", "admin")
    assert [value for value in PERSONAL if value in everything] == []
    assert everything.count(address_hash) == 1  # the suppression's, and only that


def test_the_erasure_is_recorded_after_a_withdrawal_of_every_open_consent(ada):
    subscriber = ada.subscriber
    event = erase(subscriber)
    chain = list(ConsentEvent.objects.filter(subscriber=subscriber).order_by("seq"))
    assert [(e.seq, e.kind, e.purpose.slug if e.purpose else None, e.channel) for e in chain[5:]] == [
        (6, "withdrawn", "newsletter", "email"),
        (7, "withdrawn", "newsletter", "postal"),
        (8, "withdrawn", "promotions", "email"),
        (9, "erased", None, ""),
    ]
    assert chain[-1] == event
    assert set(ConsentState.objects.filter(subscriber=subscriber).values_list("status", flat=True)) == {
        ConsentState.Status.WITHDRAWN
    }


def test_the_ledger_still_verifies_after_erasure_because_erased_evidence_is_skipped(ada):
    subscriber = ada.subscriber
    erase(subscriber)
    assert list(ledger.verify()) == []
    call_command("verify_ledger")  # raises CommandError on any problem
    # The skip is what makes it pass: blanked evidence not marked erased is a tampering.
    first = ConsentEvidence.objects.filter(event__subscriber=subscriber).order_by("event__seq").first()
    ConsentEvidence.objects.filter(pk=first.pk).update(erased_at=None)
    problems = list(ledger.verify())
    assert [(p.event_id, "evidence" in p.reason) for p in problems] == [(first.pk, True)]


def test_the_address_is_suppressed_and_the_sending_selector_leaves_it_out(ada, consent_texts):
    subscriber = ada.subscriber
    address_hash = subscriber.email_hash
    newsletter = consent_texts["newsletter"].purpose
    assert subscriber.pk in sendable_ids(newsletter.pk)
    erase(subscriber)
    suppression = Suppression.objects.get(email_hash=address_hash)
    assert (suppression.reason, suppression.in_force, suppression.detail) == ("erasure", True, "")
    assert subscriber.pk not in sendable_ids(newsletter.pk)
    # Someone puts the address back without double opt-in (a link click turns a consent on
    # at once): still never mailed, the suppression holds.
    again = sign_up(consent_texts, confirm=False)
    services.consent_opt_in(
        subscriber=again,
        purpose=newsletter,
        channel=Channel.EMAIL,
        consent_text_id=consent_texts["newsletter"].pk,
        evidence=web(),
    )
    assert ConsentState.objects.get(subscriber=again, purpose=newsletter, channel="email").status == "active"
    assert again.email_hash == address_hash
    assert again.pk not in sendable_ids(newsletter.pk)


def test_signing_up_anew_through_double_opt_in_makes_the_address_sendable_again(
    ada, consent_texts, client, mailoutbox
):
    old = ada.subscriber
    address_hash = old.email_hash
    erase(old)
    outcome = services.subscriber_sign_up(
        email=EMAIL,
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=web(email=EMAIL),
    )
    new = outcome.subscriber
    assert new.pk != old.pk
    assert Subscriber.objects.get(pk=old.pk).email is None
    assert [m.to for m in mailoutbox] == [[EMAIL]]  # the confirmation still goes out
    newsletter = consent_texts["newsletter"].purpose
    assert new.pk not in sendable_ids(newsletter.pk)
    confirm_url = link_in(mailoutbox[0])
    assert confirm_url == reverse("subscribers:confirm", args=[tokens.confirmation_token(outcome.request.pk)])
    assert client.post(confirm_url).status_code == 200
    assert not Suppression.objects.filter(email_hash=address_hash).exists()
    assert new.pk in sendable_ids(newsletter.pk)
    lifted = ConsentEvent.objects.filter(subscriber=new).order_by("-seq").select_related("evidence")[0]
    assert (lifted.kind, lifted.purpose_id, lifted.source) == (
        "suppression_lifted",
        None,
        "confirmation_link",
    )
    assert lifted.evidence.submitted == {"suppression": "erasure"}
    assert list(ledger.verify()) == []


def test_a_bounce_suppression_outlives_the_erasure_and_a_new_signup(ada, consent_texts, client, mailoutbox):
    subscriber = ada.subscriber
    address_hash = subscriber.email_hash
    services.address_suppress(
        subscriber=subscriber, reason=Suppression.Reason.HARD_BOUNCE, evidence=BY_SUBSCRIBER
    )
    erase(subscriber)
    assert list(Suppression.objects.filter(email_hash=address_hash).values_list("reason", flat=True)) == [
        "hard_bounce"
    ]
    outcome = services.subscriber_sign_up(
        email=EMAIL,
        choices=[services.ConsentChoice(consent_text=consent_texts["newsletter"], channel=Channel.EMAIL)],
        evidence=web(),
    )
    services.subscription_confirm(request_id=outcome.request.pk, evidence=web())
    assert list(Suppression.objects.filter(email_hash=address_hash).values_list("reason", flat=True)) == [
        "hard_bounce"
    ]
    assert outcome.subscriber.pk not in sendable_ids(consent_texts["newsletter"].purpose_id)


def test_a_confirmation_link_from_before_the_erasure_confirms_nothing(ada, client, consent_texts):
    subscriber = ada.subscriber
    pending = ConfirmationRequest.objects.get(subscriber=subscriber, confirmed_at__isnull=True)
    erase(subscriber)
    url = reverse("subscribers:confirm", args=[tokens.confirmation_token(pending.pk)])
    assert client.post(url).status_code == 410
    promotions = consent_texts["promotions"].purpose
    assert ConsentState.objects.get(subscriber=subscriber, purpose=promotions).status == "withdrawn"
    assert Subscriber.objects.get(pk=subscriber.pk).name == ""


def test_a_failing_erasure_hook_rolls_the_whole_erasure_back(ada, monkeypatch):
    def broken(subscriber):
        raise RuntimeError("provider export store unavailable")

    monkeypatch.setattr(exports, "_erasure_hooks", [*exports.erasure_hooks(), broken])
    events = ConsentEvent.objects.count()
    with pytest.raises(RuntimeError):
        erase(ada.subscriber)
    subscriber = Subscriber.objects.get(pk=ada.subscriber.pk)
    assert (subscriber.email, subscriber.erased_at) == (EMAIL, None)
    assert ConsentEvent.objects.count() == events
    assert not Suppression.objects.exists()
    assert EMAIL in Delivery.objects.get(campaign=ada.refused, subscriber=subscriber).error


def test_an_erased_subscriber_cannot_be_erased_again(ada):
    erase(ada.subscriber)
    with pytest.raises(services.ErasureError):
        erase(ada.subscriber)


def test_the_registry_refuses_a_section_named_like_the_export_itself():
    with pytest.raises(ValueError):
        exports.register_section("profile", lambda subscriber: {})

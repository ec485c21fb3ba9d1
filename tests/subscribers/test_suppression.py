"""Suppressing addresses, lifting suppressions, and the admin that shows and lifts them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from subscribers import ledger, services
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, Suppression
from subscribers.selectors import audience_breakdown, sendable_consents
from tests.factories import StaffFactory, staff_in

pytestmark = pytest.mark.django_db

BOUNCE = Evidence(
    source=ConsentEvent.Source.PROVIDER,
    actor=ConsentEvent.Actor.PROVIDER,
    actor_label="Mailgun",
    submitted={"event": "bounced", "reason": "bounced", "provider_event_id": "ev-1"},
)


@pytest.fixture
def subscriber(confirmed_subscriber):
    return confirmed_subscriber


@pytest.fixture
def suppression(subscriber):
    return services.address_suppress(
        subscriber=subscriber, reason=Suppression.Reason.HARD_BOUNCE, evidence=BOUNCE, detail="550 5.1.1"
    )


def newsletter_id(subscriber):
    return subscriber.consents.get().purpose_id


def sendable(subscriber):
    return sendable_consents(purpose_id=newsletter_id(subscriber)).filter(subscriber=subscriber).exists()


def test_suppressing_writes_the_row_and_a_purposeless_ledger_event(subscriber, suppression):
    assert (suppression.email_hash, suppression.reason, suppression.detail) == (
        subscriber.email_hash,
        "hard_bounce",
        "550 5.1.1",
    )
    event = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq").first()
    assert (event.kind, event.purpose_id, event.channel, event.consent_text_id) == (
        "suppressed",
        None,
        "",
        None,
    )
    assert (event.source, event.actor, event.actor_label) == ("provider", "provider", "Mailgun")
    assert event.evidence.submitted == {**BOUNCE.submitted, "suppression": "hard_bounce"}
    assert event.occurred_at == suppression.created_at
    assert list(ledger.verify()) == []
    assert not sendable(subscriber)
    assert audience_breakdown(purpose_id=newsletter_id(subscriber))["suppressed"] == 1


def test_suppressing_twice_changes_nothing(subscriber, suppression):
    events = ConsentEvent.objects.filter(subscriber=subscriber).count()
    again = services.address_suppress(subscriber=subscriber, reason="complaint", evidence=BOUNCE)
    assert again is None
    assert ConsentEvent.objects.filter(subscriber=subscriber).count() == events
    assert Suppression.objects.get().reason == "hard_bounce"


def test_lifting_is_recorded_with_who_when_and_why(subscriber, suppression):
    staff = staff_in("Compliance")
    lifted = services.suppression_lift(suppression_id=suppression.pk, staff_user=staff, note="  New signup  ")
    assert lifted.lifted_at is not None
    assert (lifted.lifted_by, lifted.lifted_by_label, lifted.lift_note) == (
        staff,
        staff.username,
        "New signup",
    )
    event = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq").first()
    assert (event.kind, event.source, event.actor) == ("suppression_lifted", "admin", "staff")
    assert (event.actor_user_id, event.actor_label, event.occurred_at) == (
        staff.pk,
        staff.username,
        lifted.lifted_at,
    )
    assert event.evidence.submitted == {"suppression": "hard_bounce", "note": "New signup"}
    assert list(ledger.verify()) == []
    assert sendable(subscriber)
    assert audience_breakdown(purpose_id=newsletter_id(subscriber))["suppressed"] == 0
    # The lifted row stays as history; a new bounce suppresses the address again.
    again = services.address_suppress(subscriber=subscriber, reason="hard_bounce", evidence=BOUNCE)
    assert again is not None and Suppression.objects.count() == 2
    assert not sendable(subscriber)


@pytest.mark.parametrize(
    ("reason", "note", "message"),
    [
        ("hard_bounce", " ", "Say why"),
        ("erasure", "asked", "stays suppressed"),
    ],
)
def test_what_cannot_be_lifted(subscriber, reason, note, message):
    suppression = services.address_suppress(subscriber=subscriber, reason=reason, evidence=BOUNCE)
    with pytest.raises(services.SuppressionError, match=message):
        services.suppression_lift(suppression_id=suppression.pk, staff_user=staff_in("Compliance"), note=note)
    suppression.refresh_from_db()
    assert suppression.lifted_at is None


def test_a_suppression_is_lifted_once(suppression):
    staff = staff_in("Compliance")
    services.suppression_lift(suppression_id=suppression.pk, staff_user=staff, note="ok")
    with pytest.raises(services.SuppressionError, match="already lifted"):
        services.suppression_lift(suppression_id=suppression.pk, staff_user=staff, note="again")


# --- Admin ------------------------------------------------------------------------------


def test_compliance_sees_why_and_lifts_in_the_admin(client, subscriber, suppression):
    staff = staff_in("Compliance")
    client.force_login(staff)
    listing = client.get(reverse("admin:subscribers_suppression_changelist"), {"q": "ADA@example.org"})
    assert listing.status_code == 200
    assert b"Hard bounce" in listing.content and b"550 5.1.1" in listing.content
    assert f"subscriber #{subscriber.pk}".encode() in listing.content
    page = client.get(reverse("admin:subscribers_suppression_change", args=[suppression.pk]))
    lift_url = reverse("admin:subscribers_suppression_lift", args=[suppression.pk])
    assert lift_url.encode() in page.content
    assert client.get(lift_url).status_code == 200
    response = client.post(lift_url, {"note": "Confirmed a new signup; removed at Mailgun too."})
    assert response.status_code == 302
    suppression.refresh_from_db()
    assert suppression.lifted_by == staff
    assert suppression.lift_note == "Confirmed a new signup; removed at Mailgun too."
    assert ConsentEvent.objects.filter(subscriber=subscriber, kind="suppression_lifted").count() == 1


def test_a_marketer_may_look_but_not_lift(client, suppression):
    client.force_login(staff_in("Marketers"))
    assert client.get(reverse("admin:subscribers_suppression_changelist")).status_code == 200
    page = client.get(reverse("admin:subscribers_suppression_change", args=[suppression.pk]))
    assert page.status_code == 200
    lift_url = reverse("admin:subscribers_suppression_lift", args=[suppression.pk])
    assert lift_url.encode() not in page.content
    assert client.get(lift_url).status_code == 403
    assert client.post(lift_url, {"note": "please"}).status_code == 403
    suppression.refresh_from_db()
    assert suppression.lifted_at is None


def test_nobody_adds_edits_or_deletes_suppressions_in_the_admin(client, suppression):
    client.force_login(StaffFactory(is_superuser=True))
    change = reverse("admin:subscribers_suppression_change", args=[suppression.pk])
    assert b'name="_save"' not in client.get(change).content
    assert client.post(change, {"reason": "manual"}).status_code == 403
    assert client.get(reverse("admin:subscribers_suppression_add")).status_code == 403
    delete = reverse("admin:subscribers_suppression_delete", args=[suppression.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403

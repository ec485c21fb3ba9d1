"""The admin: a read-only ledger for everyone, versioned texts, proofs for Compliance only."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse

from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, ConsentText
from tests.factories import staff_in

pytestmark = pytest.mark.django_db

EVIDENCE = Evidence(
    source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130"
)


@pytest.fixture
def subscriber(confirmed_subscriber):
    return confirmed_subscriber


@pytest.fixture
def superuser():
    return staff_in(is_superuser=True)


@pytest.fixture
def marketer():
    return staff_in("Marketers")


@pytest.fixture
def compliance():
    return staff_in("Compliance")


@pytest.mark.parametrize("who", ["superuser", "marketer", "compliance"])
def test_nobody_can_edit_or_delete_a_ledger_event(client, subscriber, who, request):
    client.force_login(request.getfixturevalue(who))
    event = ConsentEvent.objects.filter(subscriber=subscriber).first()
    change = reverse("admin:subscribers_consentevent_change", args=[event.pk])
    page = client.get(change)
    assert page.status_code == 200  # viewing is allowed
    assert b'name="_save"' not in page.content
    response = client.post(change, {"kind": "withdrawn"})
    assert response.status_code == 403
    delete = client.post(reverse("admin:subscribers_consentevent_delete", args=[event.pk]), {"post": "yes"})
    assert delete.status_code == 403
    assert client.get(reverse("admin:subscribers_consentevent_add")).status_code == 403
    event.refresh_from_db()
    assert event.kind == ConsentEvent.Kind.REQUESTED
    assert ConsentEvent.objects.filter(subscriber=subscriber).count() == 2


def test_marketers_see_subscribers_read_only_without_evidence_or_proof(client, subscriber, marketer):
    client.force_login(marketer)
    page = client.get(reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "ada@example.org" in html
    assert "203.0.113.7" not in html
    assert "Proof of consent" not in html
    assert client.get(reverse("admin:subscribers_subscriber_proof", args=[subscriber.pk])).status_code == 403
    assert (
        client.get(reverse("admin:subscribers_subscriber_proof_json", args=[subscriber.pk])).status_code
        == 403
    )
    assert (
        client.post(
            reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]), {"email": "x@example.org"}
        ).status_code
        == 403
    )
    assert not LogEntry.objects.exists()  # nothing was shown, so nothing to note


def test_compliance_downloads_the_proof_of_consent(client, subscriber, compliance, consent_texts):
    client.force_login(compliance)
    page = client.get(reverse("admin:subscribers_subscriber_proof", args=[subscriber.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "203.0.113.7" in html and "Firefox/130" in html
    assert consent_texts["newsletter"].use in html
    assert "verified" in html
    download = client.get(reverse("admin:subscribers_subscriber_proof_json", args=[subscriber.pk]))
    assert download["Content-Disposition"].startswith("attachment")
    proof = json.loads(download.content)
    assert proof["ledger_verified"] is True
    assert [(e["event"], e["consent_text"]["version"], e["ip_address"]) for e in proof["events"]] == [
        ("requested", 1, "203.0.113.7"),
        ("confirmed", 1, "203.0.113.7"),
    ]
    assert proof["consent_texts"][0]["withdrawal"] == consent_texts["newsletter"].withdrawal
    assert proof["current"][0]["status"] == "active"


def test_each_look_at_a_proof_is_in_the_admin_log(client, subscriber, compliance):
    """Proofs hold IP addresses and user agents: who was shown whose, and when, is kept."""
    client.force_login(compliance)
    client.get(reverse("admin:subscribers_subscriber_proof", args=[subscriber.pk]))
    client.get(reverse("admin:subscribers_subscriber_proof_json", args=[subscriber.pk]))
    client.get(reverse("admin:subscribers_subscriber_proof_json", args=[subscriber.pk]))
    entries = LogEntry.objects.order_by("pk")
    assert [
        (e.user_id, e.content_type.model, e.object_id, e.object_repr, e.action_flag, e.change_message)
        for e in entries
    ] == [
        (compliance.pk, "subscriber", str(subscriber.pk), "ada@example.org", CHANGE, message)
        for message in (
            "Viewed the proof of consent.",
            "Downloaded the proof of consent (JSON).",
            "Downloaded the proof of consent (JSON).",
        )
    ]


def test_editing_a_consent_text_in_the_admin_publishes_a_new_version(
    client, compliance, consent_texts, subscriber
):
    client.force_login(compliance)
    old = consent_texts["newsletter"]
    data = {name: getattr(old, name) for name in ConsentText.CONTENT_FIELDS}
    data["frequency"] = "Every two weeks."
    response = client.post(reverse("admin:subscribers_consenttext_change", args=[old.pk]), data)
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.frequency == "About once a month."
    new = ConsentText.objects.get(purpose=old.purpose, version=2)
    assert new.frequency == "Every two weeks."
    assert new.published_by_id == compliance.pk
    assert response.url == reverse("admin:subscribers_consenttext_change", args=[new.pk])
    # What the subscriber agreed to still points at version 1.
    assert ConsentEvent.objects.filter(subscriber=subscriber).first().consent_text_id == old.pk


def test_nobody_deletes_a_consent_text_or_purpose(client, superuser, consent_texts):
    client.force_login(superuser)
    text = consent_texts["newsletter"]
    assert (
        client.post(
            reverse("admin:subscribers_consenttext_delete", args=[text.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse("admin:subscribers_purpose_delete", args=[text.purpose_id]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert ConsentText.objects.filter(pk=text.pk).exists()


def test_a_purpose_people_agreed_to_keeps_its_name_and_description(client, superuser, consent_texts):
    """Shown beside the text people agreed to but outside its versioned digest: fixed once published."""
    client.force_login(superuser)
    purpose = consent_texts["newsletter"].purpose
    url = reverse("admin:subscribers_purpose_change", args=[purpose.pk])
    form = {
        "name": "Deals",
        "slug": "deals",
        "description": "Offers every day",
        "kind": purpose.kind,
        "offers_email": "on",
        "position": 7,
        "is_active": "on",
        "created_at_0": "2026-01-01",
        "created_at_1": "00:00:00",
    }
    response = client.post(url, form)
    assert response.status_code == 302
    purpose.refresh_from_db()
    assert (purpose.name, purpose.slug, purpose.position) == ("Newsletter", "newsletter", 7)
    assert purpose.description != "Offers every day"
    page = client.get(url).content.decode()
    assert 'name="name"' not in page and 'name="description"' not in page


def test_a_purpose_without_a_published_text_can_still_be_named(client, superuser, seeded):
    from subscribers.models import Purpose

    client.force_login(superuser)
    draft = Purpose.objects.create(slug="events", name="Events", description="Invitations")
    url = reverse("admin:subscribers_purpose_change", args=[draft.pk])
    response = client.post(
        url,
        {
            "name": "Events and talks",
            "slug": "events",
            "description": "Invitations",
            "kind": draft.kind,
            "offers_email": "on",
            "position": 0,
            "is_active": "on",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.name == "Events and talks"

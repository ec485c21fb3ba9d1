"""Data rights in the admin: Compliance downloads a subscriber's data and erases it on request;
Marketers can do neither."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from subscribers import ledger
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.subscribers.rights_helpers import EMAIL, IP, NAME, Ada, make_ada

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(consent_texts, settings, mailoutbox) -> Ada:
    return make_ada(consent_texts, settings, mailoutbox)


def urls(subscriber: Subscriber) -> dict[str, str]:
    return {
        "change": reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]),
        "erase": reverse("admin:subscribers_subscriber_erase", args=[subscriber.pk]),
        "data": reverse("admin:subscribers_subscriber_data_json", args=[subscriber.pk]),
    }


def test_the_permission_exists_and_only_compliance_has_it(seeded):
    permission = Permission.objects.get(codename="erase_subscriber")
    assert (permission.content_type.app_label, permission.content_type.model) == ("subscribers", "subscriber")
    assert list(permission.group_set.values_list("name", flat=True)) == ["Compliance"]


def test_compliance_sees_both_buttons_and_marketers_neither(client, ada, compliance, marketer):
    links = urls(ada.subscriber)
    client.force_login(compliance)
    html = client.get(links["change"]).content.decode()
    assert links["erase"] in html and links["data"] in html
    client.force_login(marketer)
    html = client.get(links["change"]).content.decode()
    assert links["erase"] not in html and links["data"] not in html


def test_a_marketer_can_neither_erase_nor_download(client, ada, marketer):
    links = urls(ada.subscriber)
    client.force_login(marketer)
    assert client.get(links["erase"]).status_code == 403
    assert client.post(links["erase"], {"request_reference": "T-1"}).status_code == 403
    assert client.get(links["data"]).status_code == 403
    subscriber = Subscriber.objects.get(pk=ada.subscriber.pk)
    assert (subscriber.email, subscriber.erased_at) == (EMAIL, None)
    assert not ConsentEvent.objects.filter(kind=ConsentEvent.Kind.ERASED).exists()


def test_compliance_downloads_the_same_export_as_the_subscriber(client, ada, compliance):
    client.force_login(compliance)
    response = client.get(urls(ada.subscriber)["data"])
    assert response.status_code == 200
    assert (
        response["Content-Disposition"] == f'attachment; filename="subscriber-{ada.subscriber.pk}-data.json"'
    )
    data = json.loads(response.content)
    assert (data["profile"]["email"], data["profile"]["name"]) == (EMAIL, NAME)
    assert data["events"][0]["ip_address"] == IP
    assert [d["campaign"] for d in data["deliveries"]] == ["March news", "April news"]


def test_each_download_of_the_data_is_in_the_admin_log(client, ada, compliance, marketer):
    client.force_login(marketer)
    assert client.get(urls(ada.subscriber)["data"]).status_code == 403
    client.force_login(compliance)
    client.get(urls(ada.subscriber)["data"])
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.content_type.model, entry.object_id, entry.object_repr) == (
        compliance.pk,
        "subscriber",
        str(ada.subscriber.pk),
        EMAIL,
    )
    assert (entry.action_flag, entry.change_message) == (CHANGE, "Downloaded the subscriber's data (JSON).")
    # An erasure renames the subscriber in the log: the address does not outlive it there.
    client.post(urls(ada.subscriber)["erase"], {"request_reference": ""})
    entry.refresh_from_db()
    assert entry.object_repr == f"erased subscriber #{ada.subscriber.pk}"


def test_compliance_erases_on_request_and_the_ledger_says_who(client, ada, compliance):
    subscriber = ada.subscriber
    address_hash = subscriber.email_hash
    links = urls(subscriber)
    client.force_login(compliance)
    page = client.get(links["erase"])
    assert page.status_code == 200
    html = page.content.decode()
    assert EMAIL in html and 'name="request_reference"' in html
    assert Subscriber.objects.get(pk=subscriber.pk).email == EMAIL  # GET changes nothing

    response = client.post(links["erase"], {"request_reference": "  TICKET-4711 "})
    assert response.status_code == 302 and response.url == links["change"]
    subscriber.refresh_from_db()
    assert (subscriber.email, subscriber.name, subscriber.erased_at is not None) == (None, "", True)
    event = ConsentEvent.objects.select_related("evidence").get(subscriber=subscriber, kind="erased")
    assert (event.source, event.actor, event.actor_user_id, event.actor_label) == (
        "admin",
        "staff",
        compliance.pk,
        compliance.username,
    )
    assert (event.evidence.submitted, event.evidence.ip_address, event.evidence.erased_at) == (
        {"request_reference": "TICKET-4711"},
        None,
        None,
    )
    withdrawals = ConsentEvent.objects.filter(subscriber=subscriber, kind="withdrawn")
    assert set(withdrawals.values_list("actor", "actor_label")) == {("staff", compliance.username)}
    assert Suppression.objects.get(email_hash=address_hash).reason == "erasure"
    entry = LogEntry.objects.get(object_id=str(subscriber.pk), user=compliance)
    assert entry.object_repr == f"erased subscriber #{subscriber.pk}"
    assert list(ledger.verify()) == []
    after = client.get(links["change"]).content.decode()
    assert "Erased " in after and links["erase"] not in after and EMAIL not in after


def test_erasing_an_erased_subscriber_changes_nothing_and_says_so(client, ada, compliance):
    links = urls(ada.subscriber)
    client.force_login(compliance)
    client.post(links["erase"], {"request_reference": ""})
    events = ConsentEvent.objects.count()
    response = client.post(links["erase"], {"request_reference": "again"}, follow=True)
    assert "already erased" in response.content.decode()
    assert ConsentEvent.objects.count() == events
    evidence = ConsentEvent.objects.get(subscriber=ada.subscriber, kind="erased").evidence
    assert evidence.submitted == {}

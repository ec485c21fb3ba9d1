"""Unsubscribing a person from everything in the admin, when they ask by email, letter or
phone: Compliance only, with the reason in the ledger, the admin log, and optionally a
suppression."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.urls import reverse

from subscribers import ledger, selectors, services
from subscribers.models import Channel, ConsentEvent, ConsentState, Subscriber, Suppression
from tests.factories import StaffFactory, staff_in
from tests.subscribers.rights_helpers import EMAIL, NAME, sign_up, web

pytestmark = pytest.mark.django_db

REQUEST = "Letter dated 2 December, scanned as ticket 4711"


@pytest.fixture
def ada(consent_texts) -> Subscriber:
    """The newsletter by email and by post, confirmed; promotions awaiting confirmation."""
    subscriber = sign_up(consent_texts)
    services.subscriber_sign_up(
        email=EMAIL,
        name=NAME,
        choices=[services.ConsentChoice(consent_text=consent_texts["promotions"], channel=Channel.EMAIL)],
        evidence=web(email=EMAIL, wanted="promotions"),
    )
    return subscriber


def urls(subscriber: Subscriber) -> dict[str, str]:
    return {
        "change": reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]),
        "unsubscribe": reverse("admin:subscribers_subscriber_unsubscribe", args=[subscriber.pk]),
    }


def statuses(subscriber: Subscriber) -> set[tuple[str, str, str]]:
    return set(
        ConsentState.objects.filter(subscriber=subscriber).values_list("purpose__slug", "channel", "status")
    )


def sendable(consent_texts, subscriber: Subscriber) -> bool:
    newsletter = consent_texts["newsletter"].purpose
    return selectors.sendable_consents(purpose_id=newsletter.pk).filter(subscriber=subscriber).exists()


OPEN = {
    ("newsletter", "email", "active"),
    ("newsletter", "postal", "active"),
    ("promotions", "email", "pending"),
}


def test_the_permission_exists_and_only_compliance_has_it(seeded):
    permission = Permission.objects.get(codename="unsubscribe_on_request")
    assert (permission.content_type.app_label, permission.content_type.model) == ("subscribers", "subscriber")
    assert list(permission.group_set.values_list("name", flat=True)) == ["Compliance"]


def test_compliance_sees_the_button_and_marketers_do_not(client, ada, compliance, marketer):
    links = urls(ada)
    client.force_login(compliance)
    assert links["unsubscribe"] in client.get(links["change"]).content.decode()
    client.force_login(marketer)
    assert links["unsubscribe"] not in client.get(links["change"]).content.decode()


def test_a_get_shows_the_form_and_changes_nothing(client, ada, compliance, consent_texts):
    events = ConsentEvent.objects.count()
    client.force_login(compliance)
    response = client.get(urls(ada)["unsubscribe"])
    assert response.status_code == 200
    html = response.content.decode()
    assert EMAIL in html and 'name="request"' in html and 'name="suppress"' in html
    assert "csrfmiddlewaretoken" in html
    for item in (
        "Newsletter (Email, active)",
        "Newsletter (Postal mail, active)",
        "Promotions (Email, awaiting",
    ):
        assert item in html
    assert (statuses(ada), ConsentEvent.objects.count()) == (OPEN, events)
    assert sendable(consent_texts, ada)
    assert not LogEntry.objects.exists()


def test_compliance_unsubscribes_and_the_ledger_says_who_and_why(client, ada, compliance, consent_texts):
    assert sendable(consent_texts, ada)
    links = urls(ada)
    client.force_login(compliance)
    response = client.post(links["unsubscribe"], {"request": f"  {REQUEST} "})
    assert response.status_code == 302 and response.url == links["change"]

    assert statuses(ada) == {(slug, channel, "withdrawn") for slug, channel, _ in OPEN}
    assert not sendable(consent_texts, ada)
    withdrawals = ConsentEvent.objects.select_related("evidence", "purpose").filter(
        subscriber=ada, kind=ConsentEvent.Kind.WITHDRAWN
    )
    assert {(e.purpose.slug, e.channel) for e in withdrawals} == {(s, c) for s, c, _ in OPEN}
    assert {
        (e.source, e.actor, e.actor_user_id, e.actor_label, e.evidence.ip_address) for e in withdrawals
    } == {("admin", "staff", compliance.pk, compliance.username, None)}
    assert [e.evidence.submitted for e in withdrawals] == [{"request": REQUEST}] * 3
    assert not Suppression.objects.exists()
    entry = LogEntry.objects.get(object_id=str(ada.pk), user=compliance)
    assert (entry.object_repr, entry.action_flag) == (EMAIL, 2)
    assert entry.change_message == (
        "Unsubscribed from everything at the person's request (3 consent(s) withdrawn)."
    )
    assert REQUEST not in entry.change_message  # the ledger keeps it; an erasure blanks it there
    assert list(ledger.verify()) == []
    assert "Withdrew 3 consent(s) in your name." in client.get(links["change"]).content.decode()


def test_with_the_box_ticked_the_address_is_also_suppressed(client, ada, compliance, consent_texts):
    client.force_login(compliance)
    response = client.post(urls(ada)["unsubscribe"], {"request": REQUEST, "suppress": "on"}, follow=True)
    assert "Withdrew 3 consent(s) in your name and suppressed the address." in response.content.decode()
    suppression = Suppression.objects.get(email_hash=ada.email_hash, lifted_at__isnull=True)
    assert (suppression.reason, suppression.detail) == (
        "manual",
        f"At the person's request, by {compliance.username}",
    )
    event = ConsentEvent.objects.select_related("evidence").get(subscriber=ada, kind="suppressed")
    assert (event.actor, event.actor_label, event.evidence.submitted) == (
        "staff",
        compliance.username,
        {"request": REQUEST, "suppression": "manual"},
    )
    assert selectors.suppression_in_force(subscriber=ada) == suppression
    entry = LogEntry.objects.get(object_id=str(ada.pk), user=compliance)
    assert "(3 consent(s) withdrawn; address suppressed)" in entry.change_message
    assert list(ledger.verify()) == []


@pytest.mark.parametrize("group", ["Marketers", None])
def test_without_the_permission_it_is_403_and_nothing_changes(client, ada, seeded, group):
    user = staff_in(group) if group else StaffFactory()
    events = ConsentEvent.objects.count()
    client.force_login(user)
    link = urls(ada)["unsubscribe"]
    assert client.get(link).status_code == 403
    assert client.post(link, {"request": REQUEST, "suppress": "on"}).status_code == 403
    assert (statuses(ada), ConsentEvent.objects.count()) == (OPEN, events)
    assert not Suppression.objects.exists() and not LogEntry.objects.exists()


@pytest.mark.parametrize("data", [{"request": "", "suppress": "on"}, {"request": "   "}, {}])
def test_an_empty_reference_is_a_form_error(client, ada, compliance, data):
    events = ConsentEvent.objects.count()
    client.force_login(compliance)
    response = client.post(urls(ada)["unsubscribe"], data)
    assert response.status_code == 200
    assert "Say how the request arrived (email, letter, phone) and its reference" in response.content.decode()
    assert (statuses(ada), ConsentEvent.objects.count()) == (OPEN, events)
    assert not Suppression.objects.exists() and not LogEntry.objects.exists()


def test_an_erased_subscriber_has_nothing_left_and_the_page_says_so(client, ada, compliance):
    client.force_login(compliance)
    client.post(reverse("admin:subscribers_subscriber_erase", args=[ada.pk]), {"request_reference": ""})
    events = ConsentEvent.objects.count()
    link = urls(ada)["unsubscribe"]
    html = client.get(link).content.decode()
    assert "was erased" in html and 'name="request"' not in html
    response = client.post(link, {"request": REQUEST, "suppress": "on"}, follow=True)
    assert "is erased: there is nothing left to withdraw." in response.content.decode()
    assert ConsentEvent.objects.count() == events
    assert set(Suppression.objects.values_list("reason", flat=True)) == {"erasure"}


def test_the_service_refuses_an_empty_note(ada, compliance):
    with pytest.raises(services.OnRequestError, match="Say how the request arrived"):
        services.subscriber_unsubscribe_on_request(
            subscriber=ada, staff_user=compliance, request_note=" ", suppress=False
        )
    assert statuses(ada) == OPEN

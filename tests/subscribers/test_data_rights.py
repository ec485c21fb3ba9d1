"""Download my data and delete me, from the preference centre's link (issue 4 §4)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse
from django.utils import timezone

from marketing.models import Delivery, DeliveryEvent
from subscribers import selectors, services
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, ConsentState, ConsentText, Subscriber, Suppression
from tests.subscribers.rights_helpers import (
    ADDRESS,
    EMAIL,
    IP,
    NAME,
    PAGE,
    UA,
    Ada,
    bad_tokens,
    link_in,
    make_ada,
    token_issued,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(consent_texts, settings, mailoutbox) -> Ada:
    return make_ada(consent_texts, settings, mailoutbox)


def my_data_url(subscriber: Subscriber) -> str:
    return reverse("subscribers:my_data", args=[selectors.preferences_token(subscriber)])


def full_text(text: ConsentText) -> dict:
    return {
        "version": text.version,
        "language": "en",
        "published_at": text.published_at.isoformat(),
        **{name: getattr(text, name) for name in ConsentText.CONTENT_FIELDS},
    }


def test_the_preference_centre_links_to_both(client, ada):
    token = selectors.preferences_token(ada.subscriber)
    html = client.get(reverse("subscribers:preferences", args=[token])).content.decode()
    assert reverse("subscribers:my_data", args=[token]) in html
    assert reverse("subscribers:delete_me", args=[token]) in html


def test_the_download_holds_the_profile_every_event_in_full_and_every_delivery(client, ada, consent_texts):
    subscriber = ada.subscriber
    delivered = Delivery.objects.get(campaign=ada.delivered, subscriber=subscriber)
    opened = DeliveryEvent.objects.create(
        delivery=delivered,
        campaign=ada.delivered,
        esp_name="site",
        event_type="opened",
        occurred_at=timezone.now(),
        dedupe_key="open-1",
    )
    response = client.get(my_data_url(subscriber))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == 'attachment; filename="my-data.json"'
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)
    assert data["profile"] == {
        "id": subscriber.pk,
        "email": EMAIL,
        "name": NAME,
        "language": "en",
        **ADDRESS,
        "created_at": subscriber.created_at.isoformat(),
        "paused_until": None,
    }
    news, promos = consent_texts["newsletter"], consent_texts["promotions"]
    assert [(e["position"], e["event"], e["purpose"], e["channel"]) for e in data["events"]] == [
        (1, "requested", "newsletter", "email"),
        (2, "requested", "newsletter", "postal"),
        (3, "confirmed", "newsletter", "email"),
        (4, "confirmed", "newsletter", "postal"),
        (5, "requested", "promotions", "email"),
    ]
    first = data["events"][0]
    assert first["consent_text"] == full_text(news)
    assert data["events"][4]["consent_text"] == full_text(promos)
    assert (first["ip_address"], first["user_agent"], first["page_url"]) == (IP, UA, PAGE)
    assert first["submitted"] == {"email": EMAIL, "name": NAME}
    assert (first["source"], first["actor"]) == ("signup_page", "subscriber")
    assert [(c["purpose"], c["channel"], c["status"]) for c in data["consents"]] == [
        ("newsletter", "email", "active"),
        ("newsletter", "postal", "active"),
        ("promotions", "email", "pending"),
    ]
    refused = Delivery.objects.get(campaign=ada.refused, subscriber=subscriber)
    assert data["deliveries"] == [
        {
            "campaign": "March news",
            "subject": "What's new in March",
            "purpose": "newsletter",
            "status": "sent",
            "sent_at": delivered.sent_at.isoformat(),
            "provider_message_id": delivered.provider_message_id,
            "opens_and_clicks_noted": delivered.tracked,
            "events": [{"event": "opened", "at": opened.occurred_at.isoformat(), "detail": ""}],
        },
        {
            "campaign": "April news",
            "subject": "April",
            "purpose": "newsletter",
            "status": "failed",
            "sent_at": None,
            "provider_message_id": refused.provider_message_id,
            "opens_and_clicks_noted": False,
            "events": [],
        },
    ]
    assert data["suppression"] is None
    assert delivered.provider_message_id


def test_a_stale_link_gets_one_button_that_emails_a_fresh_link(
    client, ada, monkeypatch, mailoutbox, settings
):
    settings.FRESH_LINK_HOURS = 24
    stale = token_issued(monkeypatch, hours_ago=25, subscriber=ada.subscriber)
    url = reverse("subscribers:my_data", args=[stale])
    page = client.get(url)
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    html = page.content.decode()
    assert "Email me a fresh link" in html and EMAIL not in html
    assert mailoutbox == []
    sent = client.post(url)
    assert sent.status_code == 302 and sent.url == reverse("subscribers:manage_sent")
    assert [m.to for m in mailoutbox] == [[EMAIL]]
    preferences = link_in(mailoutbox[0])
    fresh_token = preferences.rstrip("/").rsplit("/", 1)[1]
    download = client.get(reverse("subscribers:my_data", args=[fresh_token]))
    assert json.loads(download.content)["profile"]["email"] == EMAIL


def test_a_link_just_inside_the_window_still_downloads(client, ada, monkeypatch, settings):
    settings.FRESH_LINK_HOURS = 24
    token = token_issued(monkeypatch, hours_ago=23, subscriber=ada.subscriber)
    response = client.get(reverse("subscribers:my_data", args=[token]))
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("page", ["subscribers:my_data", "subscribers:delete_me"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_bad_links_on_the_new_pages_get_the_friendly_page_and_change_nothing(
    client, ada, monkeypatch, mailoutbox, page, method
):
    subscriber = ada.subscriber
    tokens = bad_tokens(monkeypatch, subscriber)
    events = ConsentEvent.objects.count()
    for kind, token in tokens.items():
        response = getattr(client, method)(reverse(page, args=[token]))
        assert response.status_code == 400, kind
        html = response.content.decode()
        assert "We couldn't read this link" in html, kind
        assert f'action="{reverse("subscribers:manage")}"' in html, kind
    assert ConsentEvent.objects.count() == events
    assert Subscriber.objects.get(pk=subscriber.pk).email == EMAIL
    assert mailoutbox == []


def test_a_revoked_link_gets_the_friendly_page(client, ada):
    token = selectors.preferences_token(ada.subscriber)
    Subscriber.objects.filter(pk=ada.subscriber.pk).update(link_generation=5)
    for name in ("subscribers:my_data", "subscribers:delete_me"):
        assert client.get(reverse(name, args=[token])).status_code == 400
        assert client.post(reverse(name, args=[token])).status_code == 400
    assert Subscriber.objects.get(pk=ada.subscriber.pk).erased_at is None


def test_the_delete_page_changes_nothing_until_its_button_is_pressed(client, ada):
    subscriber = ada.subscriber
    token = selectors.preferences_token(subscriber)
    url = reverse("subscribers:delete_me", args=[token])
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert EMAIL in html and 'method="post"' in html and "Delete my data" in html
    subscriber.refresh_from_db()
    assert subscriber.email == EMAIL and subscriber.erased_at is None

    response = client.post(url)
    assert response.status_code == 302 and response.url == reverse("subscribers:erased")
    goodbye = client.get(response.url)
    assert goodbye.status_code == 200 and "Your data is deleted" in goodbye.content.decode()
    subscriber.refresh_from_db()
    assert (subscriber.email, subscriber.name, subscriber.erased_at is not None) == (None, "", True)
    erased = ConsentEvent.objects.filter(subscriber=subscriber).order_by("-seq").select_related("evidence")[0]
    assert (erased.kind, erased.purpose_id, erased.channel, erased.consent_text_id) == (
        "erased",
        None,
        "",
        None,
    )
    assert (erased.source, erased.actor, erased.actor_user_id, erased.actor_label) == (
        "preference_centre",
        "subscriber",
        None,
        "",
    )
    evidence = erased.evidence
    assert (evidence.ip_address, evidence.user_agent, evidence.page_url, evidence.submitted) == (
        None,
        "",
        "",
        {},
    )
    assert set(ConsentState.objects.filter(subscriber=subscriber).values_list("status", flat=True)) == {
        "withdrawn"
    }

    # The links in every earlier email now get the friendly page, and a second press is harmless.
    for name in ("subscribers:preferences", "subscribers:my_data", "subscribers:delete_me"):
        assert client.get(reverse(name, args=[token])).status_code == 400
    assert client.post(url).status_code == 400
    assert ConsentEvent.objects.filter(subscriber=subscriber, kind="erased").count() == 1


def test_delete_needs_the_csrf_token(ada):
    from django.test import Client

    url = reverse("subscribers:delete_me", args=[selectors.preferences_token(ada.subscriber)])
    assert Client(enforce_csrf_checks=True).post(url).status_code == 403
    assert Subscriber.objects.get(pk=ada.subscriber.pk).email == EMAIL


def test_the_download_says_when_the_address_is_suppressed_and_why(client, ada):
    subscriber = ada.subscriber
    services.address_suppress(
        subscriber=subscriber,
        reason=Suppression.Reason.HARD_BOUNCE,
        evidence=Evidence(source=ConsentEvent.Source.PROVIDER, actor=ConsentEvent.Actor.PROVIDER),
    )
    data = json.loads(client.get(my_data_url(subscriber)).content)
    assert data["suppression"]["reason"] == "hard_bounce"
    assert data["suppression"]["since"]

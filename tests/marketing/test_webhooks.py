"""The webhooks under /anymail/: credentials, signatures, garbage, duplicates, storage."""

from __future__ import annotations

import base64
import json

import pytest
from django.urls import reverse

from marketing.models import Delivery, DeliveryEvent
from tests.marketing import provider_payloads as p

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("webhooks"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


@pytest.fixture
def delivery(sent_campaign):
    return Delivery.objects.select_related("subscriber").filter(campaign=sent_campaign).order_by("id").first()


def valid(provider, delivery):
    email, message_id = delivery.subscriber.email, delivery.provider_message_id
    if provider == "mailgun":
        return p.mailgun("delivered", recipient=email, message_id=message_id, variables=p.metadata(delivery))
    if provider == "sendgrid":
        return [p.sendgrid("delivered", email=email, anymail_id=message_id, custom=p.metadata(delivery))]
    return p.postmark_delivery(email=email, message_id=message_id, meta=p.metadata(delivery))


PROVIDERS = ["mailgun", "sendgrid", "postmark"]


def test_every_anymail_tracking_webhook_is_mounted_and_no_inbound_one():
    assert reverse("anymail:mailgun_tracking_webhook") == "/anymail/mailgun/tracking/"
    assert reverse("anymail:sendgrid_tracking_webhook") == "/anymail/sendgrid/tracking/"
    assert reverse("anymail:postmark_tracking_webhook") == "/anymail/postmark/tracking/"
    assert reverse("anymail:amazon_ses_tracking_webhook") == "/anymail/amazon_ses/tracking/"
    assert reverse("anymail:mandrill_webhook") == "/anymail/mandrill/"
    from marketing.webhooks import urlpatterns

    assert not [u for u in urlpatterns if "inbound" in (u.name or "")]
    assert len(urlpatterns) >= 14


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_valid_event_is_stored_once(client, delivery, provider):
    payload = valid(provider, delivery)
    response = p.post(client, provider, payload)
    assert response.status_code == 200
    assert p.post(client, provider, payload).status_code == 200  # the provider retries
    event = DeliveryEvent.objects.get()
    assert (event.event_type, event.delivery, event.matched) == ("delivered", delivery, True)
    assert event.esp_name == {"mailgun": "Mailgun", "sendgrid": "SendGrid", "postmark": "Postmark"}[provider]


def test_a_mailgun_retry_with_a_new_signature_token_is_the_same_event(client, delivery):
    first = valid("mailgun", delivery)
    again = json.loads(json.dumps(first))
    again["signature"] = {"token": "another-token-for-the-retry-0123456789abcdef"}
    p.mailgun_sign(again)
    assert p.post(client, "mailgun", first).status_code == 200
    assert p.post(client, "mailgun", again).status_code == 200
    assert DeliveryEvent.objects.count() == 1


def test_a_sendgrid_batch_stores_each_event(client, sent_campaign):
    deliveries = Delivery.objects.select_related("subscriber").filter(campaign=sent_campaign)
    batch = [
        p.sendgrid(kind, email=d.subscriber.email, anymail_id=d.provider_message_id, custom=p.metadata(d))
        for d, kind in zip(deliveries, ["processed", "delivered", "open"], strict=False)
    ]
    assert p.post(client, "sendgrid", batch).status_code == 200
    assert sorted(DeliveryEvent.objects.values_list("event_type", flat=True)) == [
        "delivered",
        "opened",
        "queued",
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("secret", ["hooks:wrong-password", ""])
def test_wrong_or_missing_credentials_are_refused(client, delivery, provider, secret):
    body = json.dumps(valid(provider, delivery))
    headers = p.auth(secret) if secret else {}
    response = client.post(
        f"/anymail/{provider}/tracking/", data=body, content_type="application/json", **headers
    )
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert b"credentials" in response.content
    assert not DeliveryEvent.objects.exists()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning")
def test_webhooks_are_off_until_the_shared_secret_is_set(client, delivery, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ""}
    response = p.post(client, "postmark", valid("postmark", delivery), secret="anything:at-all")
    assert response.status_code == 503
    assert b"ANYMAIL_WEBHOOK_SECRET" in response.content
    assert not DeliveryEvent.objects.exists()


def test_a_wrong_mailgun_signature_is_refused(client, delivery):
    payload = valid("mailgun", delivery)
    p.mailgun_sign(payload, key="not-the-signing-key")
    response = p.post(client, "mailgun", payload)
    assert response.status_code == 403
    assert response.content == b"The Mailgun webhook signature was not accepted.\n"
    assert not DeliveryEvent.objects.exists()


def test_an_unsigned_mailgun_event_is_refused(client, delivery):
    payload = valid("mailgun", delivery)
    del payload["signature"]
    assert p.post(client, "mailgun", payload).status_code == 403
    assert not DeliveryEvent.objects.exists()


def test_a_tampered_mailgun_event_is_refused(client, delivery):
    payload = valid("mailgun", delivery)
    payload["signature"]["timestamp"] = str(p.TIMESTAMP + 1)  # replayed with a changed timestamp
    assert p.post(client, "mailgun", payload).status_code == 403


GARBAGE = [
    ("mailgun", b"{not json"),
    ("mailgun", b"\xff\xfe\x00"),
    ("mailgun", json.dumps({"signature": "x", "event-data": {}}).encode()),
    ("mailgun", json.dumps(p.mailgun_sign({"event-data": {"timestamp": 1}})).encode()),
    ("mailgun", json.dumps(p.mailgun_sign({"event-data": ["delivered"]})).encode()),
    ("sendgrid", b"[{"),
    ("sendgrid", json.dumps({"event": "delivered"}).encode()),
    ("sendgrid", json.dumps([{"email": "a@example.org"}]).encode()),
    ("sendgrid", json.dumps([{"event": "bounce", "timestamp": "soon"}, "x"]).encode()),
    ("postmark", b""),
    ("postmark", json.dumps([]).encode()),
    ("postmark", json.dumps({"hello": "world"}).encode()),
    ("postmark", json.dumps({"RecordType": "Bounce", "Type": ["HardBounce"]}).encode()),
]


@pytest.mark.parametrize(("provider", "body"), GARBAGE)
def test_garbage_is_a_400_and_nothing_is_stored(client, provider, body):
    response = p.post(client, provider, None, raw=body)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert b"nothing was stored" in response.content
    assert not DeliveryEvent.objects.exists()


def test_an_empty_sendgrid_batch_is_fine(client):
    assert p.post(client, "sendgrid", []).status_code == 200
    assert not DeliveryEvent.objects.exists()


def test_only_post_is_accepted(client):
    assert client.get("/anymail/postmark/tracking/", **p.auth()).status_code == 405


def test_a_provider_without_its_signing_key_answers_503_not_500(client, delivery, settings):
    settings.ANYMAIL = {k: v for k, v in settings.ANYMAIL.items() if k != "MAILGUN_WEBHOOK_SIGNING_KEY"}
    for method in (client.get, client.post):
        response = method("/anymail/mailgun/tracking/", **p.auth())
        assert response.status_code == 503
        assert b"signing key is missing" in response.content
    assert not DeliveryEvent.objects.exists()


def test_what_is_kept_of_the_recipient_is_a_hash_and_the_domain(client, delivery):
    email = delivery.subscriber.email
    payload = p.mailgun_hard_bounce(recipient=email, message_id=delivery.provider_message_id)
    assert p.post(client, "mailgun", payload).status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.recipient_hash == delivery.subscriber.email_hash
    assert event.recipient_domain == "example.org"
    stored = json.dumps(list(DeliveryEvent.objects.values()), default=str)
    assert email not in stored
    assert event.mta_response.startswith("5.1.1 <[address]>: The email account")


def test_sendgrid_signed_events_are_checked_with_the_configured_public_key(client, delivery, settings):
    """SendGrid signs each batch with ECDSA (P-256, SHA-256) over timestamp + body."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def signed_post(body: bytes, key: ec.EllipticCurvePrivateKey) -> object:
        timestamp = str(p.TIMESTAMP)
        signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return client.post(
            "/anymail/sendgrid/tracking/",
            data=body,
            content_type="application/json",
            HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=base64.b64encode(signature).decode(),
            HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP=timestamp,
            **p.auth(),
        )

    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY": base64.b64encode(public).decode(),
    }
    body = json.dumps(valid("sendgrid", delivery)).encode()

    forged = signed_post(body, ec.generate_private_key(ec.SECP256R1()))
    assert forged.status_code == 403
    unsigned = p.post(client, "sendgrid", None, raw=body)
    assert unsigned.status_code == 403
    assert not DeliveryEvent.objects.exists()

    assert signed_post(body, sendgrid_key).status_code == 200
    assert DeliveryEvent.objects.get().delivery == delivery

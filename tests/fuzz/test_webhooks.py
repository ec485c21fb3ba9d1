"""Every provider webhook under /anymail/ fed garbage, wrong shapes, huge bodies, NUL bytes,
bad credentials and bad signatures: a clear 4xx and nothing stored, or (for an event that
parses) a 200 that stores only what it names. Never a 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from marketing.models import Delivery, DeliveryEvent
from marketing.webhooks import urlpatterns
from subscribers.models import Suppression
from tests.fuzz import strategies as hs
from tests.fuzz.records import changed, snapshot
from tests.marketing import provider_payloads as p

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("webhooks", "sent_campaign"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailDeprecationWarning"),
]

URLS = sorted(f"/anymail/{pattern.pattern}" for pattern in urlpatterns)
NOT_CONFIGURED = "signing key is missing"
# Keys the providers' parsers look for, so wrong shapes get past the first check or two.
KEYS = [
    "event",
    "event-data",
    "signature",
    "email",
    "recipient",
    "RecordType",
    "MessageID",
    "Email",
    "Metadata",
    "Type",
    "message",
    "headers",
    "message-id",
    "timestamp",
    "user-variables",
    "anymail_id",
    "sg_event_id",
    "delivery_id",
    "mandrill_events",
    "msys",
    "Message",
    "eventType",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hs.nasty_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | hs.nasty_text, inner, max_size=6)
    ),
    max_leaves=25,
)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=300),
    hs.nasty_text.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b"\x00" * 64),
    st.just(b'{"event-data": {"event": "failed", "recipient": "a\\u0000@example.org"}}'),
    st.just(b"[" * 5000),
)
content_types = st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"]
)


def post(client, url: str, body: bytes, content_type: str, **extra: str):
    return client.generic("POST", url, body, content_type=content_type, **{**p.auth(), **extra})


def assert_clear_refusal_or_ok(response) -> None:
    status = response.status_code
    if status == 503:  # this provider's signing key is not set in the tests: said so, plainly
        assert NOT_CONFIGURED in response.content.decode()
        return
    assert status in (200, 400, 401, 403), (status, response.content[:300])


@given(url=st.sampled_from(URLS), body=bodies, content_type=content_types)
@example(url="/anymail/mailgun/tracking/", body=b'{"event-data": 1}', content_type="application/json")
@example(url="/anymail/sendgrid/tracking/", body=b"[" * 5000, content_type="application/json").via(
    "JSON nested 5,000 deep: a RecursionError, a 500"
)
@example(url="/anymail/postmark/tracking/", body=b"[" * 5000, content_type="text/plain")
def test_garbage_to_any_webhook_is_refused_clearly(client, url, body, content_type):
    before = snapshot()
    response = post(client, url, body, content_type)
    assert_clear_refusal_or_ok(response)
    if response.status_code != 200:
        assert changed(before) == []


@given(url=st.sampled_from(URLS), secret=hs.hostile_text.filter(lambda s: s != p.SECRET), body=bodies)
def test_wrong_credentials_are_refused_and_nothing_is_stored(client, url, secret, body):
    before = snapshot()
    auth = p.auth(secret.encode("utf-8", "surrogatepass").decode("latin-1"))
    response = client.generic("POST", url, body, content_type="application/json", **auth)
    if response.status_code != 503:  # 503: the provider is not configured at all (see above)
        assert response.status_code == 401
    assert_clear_refusal_or_ok(response)
    assert changed(before) == []


@given(extra=hs.nasty_text, key=st.sampled_from(["", "key-someone-else"]))
def test_a_mailgun_event_with_a_bad_signature_is_refused(client, extra, key):
    delivery = Delivery.objects.order_by("pk").first()
    payload = p.mailgun(
        "complained", recipient="reader0@example.org", message_id=delivery.provider_message_id, key=key or "x"
    )
    payload["signature"]["token"] += extra or "x"  # altered after signing
    before = snapshot()
    response = p.post(client, "mailgun", payload)
    assert response.status_code in (400, 403)  # 400: a token that cannot even be checked
    assert changed(before) == []


# Field values a provider (or whoever holds the webhook secret) could put in a real event.
@given(
    provider=st.sampled_from(["mailgun", "sendgrid", "postmark"]),
    event=st.sampled_from(["delivered", "complained", "bounced"]),
    recipient=hs.addresses,
    message_id=hs.hostile_text,
    description=hs.hostile_text,
    delivery_id=st.one_of(hs.hostile_text, st.integers().map(str)),
)
@example(
    provider="mailgun",
    event="bounced",
    recipient="reader0@example.org",
    message_id="id\x00",
    description="5.1.1 \x00",
    delivery_id="1",
).via("a NUL in a webhook payload: a 500 from PostgreSQL")
def test_hostile_values_in_a_well_formed_event_never_give_a_500(
    client, audience, provider, event, recipient, message_id, description, delivery_id
):
    meta = {"delivery_id": delivery_id, "campaign_id": "1"}
    if provider == "mailgun":
        kind = {"delivered": "delivered", "complained": "complained", "bounced": "failed"}[event]
        extra = {"severity": "permanent", "reason": description} if kind == "failed" else {}
        payload = p.mailgun(kind, recipient=recipient, message_id=message_id, variables=meta, **extra)
    elif provider == "sendgrid":
        kind = {"delivered": "delivered", "complained": "spamreport", "bounced": "bounce"}[event]
        payload = [p.sendgrid(kind, email=recipient, anymail_id=message_id, custom=meta, reason=description)]
    else:
        if event == "complained":
            payload = p.postmark_spam_complaint(email=recipient, message_id=message_id, meta=meta)
        else:
            payload = p.postmark_bounce(email=recipient, message_id=message_id, meta=meta)
        payload["Description"] = description
    suppressed_before = set(Suppression.objects.values_list("email_hash", flat=True))
    before = snapshot()

    response = p.post(client, provider, payload)

    assert response.status_code in (200, 400), response.status_code
    if response.status_code == 400:
        assert changed(before) == []
        return
    # Whatever it says, an event suppresses at most the address it names, and only one we mailed.
    new = set(Suppression.objects.values_list("email_hash", flat=True)) - suppressed_before
    assert len(new) <= 1
    for row in DeliveryEvent.objects.all():
        for value in (row.provider_message_id, row.description, row.mta_response, row.event_id):
            assert "\x00" not in value


def test_a_body_over_the_upload_limit_is_refused(client, cases):
    before = snapshot()
    for url in ("/anymail/mailgun/tracking/", "/anymail/sendgrid/tracking/", "/anymail/postmark/tracking/"):
        response = post(client, url, b"[" + b'{"event": "delivered"},' * 200_000 + b"{}]", "application/json")
        assert response.status_code == 400
        cases(1)
    assert changed(before) == []


def test_the_list_of_webhooks_fuzzed_is_every_tracking_webhook(cases):
    assert len(URLS) >= 14
    cases(1)

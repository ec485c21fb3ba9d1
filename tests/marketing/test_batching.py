"""The one message a batch-capable provider gets: merge tags, per-recipient values and headers."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from anymail.message import AnymailRecipientStatus, AnymailStatus
from django.core.mail import get_connection
from django.utils.html import escape

from marketing import batching, rendering
from marketing.models import Campaign
from subscribers.models import Purpose

pytestmark = pytest.mark.django_db

MAILGUN = "anymail.backends.mailgun.EmailBackend"
SENDGRID = "anymail.backends.sendgrid.EmailBackend"
NAME = '<b>Tom & "Jerry"</b>'
ONE_WORD = '<b>Tom&"Jerry"</b>'
CONSENTED = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://news.example.com"
    settings.SENDER_EMAIL = "news@mail.example.com"
    settings.DEFAULT_FROM_EMAIL = "Example Newsletter <news@mail.example.com>"
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@mail.example.com"
    settings.TIME_ZONE = "UTC"
    settings.EMAIL_BACKEND = MAILGUN


@pytest.fixture
def prepared(consent_texts) -> rendering.PreparedCampaign:
    campaign = Campaign.objects.create(
        name="March",
        purpose=Purpose.objects.get(slug="newsletter"),
        subject="News for {{ first_name }}",
        body="# Hello {{ first_name }}\n\nRead [this](https://example.com/a?x=1&y=2).\n",
        first_name_fallback="friend",
    )
    return rendering.prepare(campaign)


RECIPIENTS = {
    101: rendering.Recipient(subscriber_id=1, email="tom@example.org", name=NAME, consented_at=CONSENTED),
    102: rendering.Recipient(subscriber_id=2, email="jo@example.org", name=ONE_WORD, consented_at=None),
    103: rendering.Recipient(subscriber_id=3, email="anon@example.org", name="", consented_at=CONSENTED),
}


def html_of(message) -> str:
    return next(content for content, mimetype in message.alternatives if mimetype == "text/html")


def mailgun_expand(template: str, values: dict[str, str]) -> str:
    return re.sub(r"%recipient\.([^%]+)%", lambda m: values[m.group(1)], template)


def test_only_providers_with_per_recipient_bodies_batch(settings):
    assert batching.supported(MAILGUN)
    assert batching.supported(SENDGRID)
    assert not batching.supported("anymail.backends.postmark.EmailBackend")
    assert not batching.supported("django.core.mail.backends.smtp.EmailBackend")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert not batching.supported()


def test_the_first_name_is_escaped_for_html_and_raw_for_text(prepared):
    message = batching.build_message(prepared, RECIPIENTS)
    tom, jo, anon = (message.merge_data[r.email] for r in RECIPIENTS.values())
    assert tom["first_name"] == "<b>Tom"  # the first word of the name
    assert tom["first_name_html"] == "&lt;b&gt;Tom"
    assert jo["first_name"] == ONE_WORD
    assert jo["first_name_html"] == escape(ONE_WORD) == "&lt;b&gt;Tom&amp;&quot;Jerry&quot;&lt;/b&gt;"
    assert (anon["first_name"], anon["first_name_html"]) == ("friend", "friend")
    # The shared body names only merge tags, never anyone's values.
    html, text = html_of(message), message.body
    assert "%recipient.first_name_html%" in html and "%recipient.first_name%" not in html
    assert "%recipient.first_name%" in text and "_html%" not in text
    assert message.subject == "News for %recipient.first_name%"
    assert "%%" not in html + text + message.subject
    assert "Tom" not in html + text


def test_each_copy_is_exactly_the_single_message_for_that_recipient(prepared):
    message = batching.build_message(prepared, RECIPIENTS)
    assert message.to == [r.email for r in RECIPIENTS.values()]
    for delivery_id, recipient in RECIPIENTS.items():
        single = rendering.build_message(prepared, recipient)
        values = message.merge_data[recipient.email]
        assert mailgun_expand(html_of(message), values) == html_of(single)
        assert mailgun_expand(message.body, values) == single.body
        assert mailgun_expand(message.subject, values) == single.subject
        # RFC 8058 and List-Id headers, with this recipient's own link: Mailgun fills the
        # one-click header from the footer's unsubscribe variable.
        headers = {name: mailgun_expand(value, values) for name, value in message.extra_headers.items()}
        assert headers == single.extra_headers
        assert not hasattr(message, "merge_headers")
        assert message.merge_metadata[recipient.email] == {"delivery_id": str(delivery_id)}
    assert message.metadata == {"campaign_id": str(prepared.campaign_id)}
    links = {message.merge_data[r.email]["unsubscribe_url"] for r in RECIPIENTS.values()}
    assert len(links) == 3


def test_anymail_sends_mailgun_one_call_with_recipient_variables(prepared):
    backend = get_connection(MAILGUN, api_key="key-test", sender_domain="mg.example.com")
    message = batching.build_message(prepared, RECIPIENTS, connection=backend)
    data = backend.build_message_payload(message, backend.send_defaults).serialize_data()
    assert data["to"] == [r.email for r in RECIPIENTS.values()]
    # Each recipient's link is sent once, as a variable the header and the footer both name.
    assert data["h:List-Unsubscribe"].startswith("<%recipient.unsubscribe_url%>, <mailto:")
    assert data["v:delivery_id"] == "%recipient.v:delivery_id%"
    variables = json.loads(data["recipient-variables"])
    tom = variables["tom@example.org"]
    assert tom["first_name_html"] == "&lt;b&gt;Tom" and tom["first_name"] == "<b>Tom"
    assert tom["v:delivery_id"] == "101"
    # Links never change when escaped: one variable serves both parts, the call stays small.
    assert "unsubscribe_url_html" not in tom and "%recipient.unsubscribe_url%" in data["html"]
    assert not any(key.startswith("h:") for key in tom)
    assert data["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # everyone's


@pytest.mark.filterwarnings("ignore:django-anymail has dropped official support for SendGrid")
def test_sendgrid_gets_delimited_substitutions(prepared, settings):
    backend = get_connection(SENDGRID, api_key="SG.test")
    message = batching.build_message(prepared, RECIPIENTS, connection=backend, backend=SENDGRID)
    assert "-nl_first_name_html-" in html_of(message)
    data = backend.build_message_payload(message, backend.send_defaults).serialize_data()
    personalizations = json.loads(data)["personalizations"]
    assert [p["to"][0]["email"] for p in personalizations] == [r.email for r in RECIPIENTS.values()]
    tom = personalizations[0]
    assert tom["substitutions"]["-nl_first_name-"] == "<b>Tom"
    assert tom["substitutions"]["-nl_first_name_html-"] == "&lt;b&gt;Tom"
    assert tom["headers"]["List-Unsubscribe"].startswith(f"<{tom['substitutions']['-nl_unsubscribe_url-']}>")
    assert json.loads(data)["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert tom["custom_args"]["delivery_id"] == "101"


def test_outcomes_follow_each_recipients_status(prepared):
    message = batching.build_message(prepared, RECIPIENTS)
    status = AnymailStatus()
    status.set_recipient_status(
        {
            "tom@example.org": AnymailRecipientStatus(message_id="<a@mg>", status="queued"),
            "jo@example.org": AnymailRecipientStatus(message_id=None, status="rejected"),
            "anon@example.org": AnymailRecipientStatus(message_id="<a@mg>", status="sent"),
        }
    )
    message.anymail_status = status
    outcomes = batching.recipient_outcomes(message, RECIPIENTS)
    assert outcomes == {
        101: (True, "<a@mg>", ""),
        102: (False, "", "provider refused the recipient: rejected"),
        103: (True, "<a@mg>", ""),
    }


ADDRESSES = [
    "tom@example.org",
    "O'Brien+news@Sub-Domain.Example.ORG",
    "a.b.c@xn--bcher-kva.example",
    '"quoted local"@example.org',
    "Tom Jones <tom.jones@example.org>",
    "user@[192.0.2.1]",
    "jörg@example.org",
]
INVALID = ["dot..twice@example.org", ".lead@example.org", "no-at-sign", "two@at@example.org"]


@pytest.mark.parametrize(
    ("path", "faster"),
    [
        (MAILGUN, "marketing.batch_backends.MailgunBackend"),
        (SENDGRID, "marketing.batch_backends.SendGridBackend"),
    ],
)
@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailWarning")
def test_the_batch_backend_builds_the_payload_anymail_builds(settings, path, faster):
    """Plain addresses are split rather than parsed; the payload and the errors do not change."""
    from anymail.exceptions import AnymailInvalidAddress
    from django.core.mail import EmailMultiAlternatives

    from marketing import batch_backends

    settings.ANYMAIL = {"MAILGUN_API_KEY": "k", "SENDGRID_API_KEY": "k", "IGNORE_UNSUPPORTED_FEATURES": True}
    settings.EMAIL_BACKEND = path
    ours, theirs = batch_backends.connection(), get_connection(path)
    assert f"{type(ours).__module__}.{type(ours).__name__}" == faster

    def payload(backend, to):
        message = EmailMultiAlternatives(subject="s", body="b", from_email="news@mail.example.com", to=to)
        message.merge_data = {a: {"x": "1"} for a in to}
        return backend.build_message_payload(message, backend.send_defaults)

    def data(built):  # less SendGrid's random anymail_id per recipient
        raw = built.serialize_data()
        return re.sub(r'"anymail_id": "[^"]*"', "", raw) if isinstance(raw, str) else raw

    mine, anymails = payload(ours, ADDRESSES), payload(theirs, ADDRESSES)
    assert data(mine) == data(anymails)
    if path == MAILGUN:
        assert [(a.display_name, a.username, a.domain, a.address) for a in mine.all_recipients] == [
            (a.display_name, a.username, a.domain, a.address) for a in anymails.all_recipients
        ]
    for address in INVALID:
        with pytest.raises(AnymailInvalidAddress) as their_error:
            payload(theirs, ["tom@example.org", address])
        with pytest.raises(AnymailInvalidAddress) as my_error:
            payload(ours, ["tom@example.org", address])
        assert str(my_error.value).split(" parsed from")[0] == str(their_error.value).split(" parsed from")[0]


def test_the_mailgun_form_is_the_body_requests_would_encode():
    from requests.models import RequestEncodingMixin

    from marketing.batch_backends import form_urlencoded

    data = {
        "from": ["Example Newsletter <news@mail.example.com>"],
        "to": ["tom@example.org", "O'Brien+news@example.org"],
        "subject": "Ça va, %recipient.first_name%? 100% ~ fine_.-",
        "h:List-Unsubscribe": "<%recipient.unsubscribe_url%>",
        "recipient-variables": json.dumps({"tom@example.org": {"first_name": 'Tom & "Jerry"\n'}}),
        "o:tracking": "no",
        "v:campaign_id": 7,
        "empty": "",
        "left out": None,
        "bytes": "é".encode(),
    }
    assert form_urlencoded(data).decode() == RequestEncodingMixin._encode_params(data)

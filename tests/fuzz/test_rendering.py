"""Campaign messages built from hostile values: a subscriber's name, a marketer's subject and
preheader, a purpose's name and any Markdown body. No script, no extra header, one recipient."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from marketing import rendering
from marketing.models import Campaign
from subscribers import emails
from subscribers.models import Purpose
from tests.fuzz import strategies as hs
from tests.fuzz.mail import CAMPAIGN_HEADERS, TRANSACTIONAL_HEADERS, assert_headers_clean, parsed

EMAIL_TEMPLATES = [
    "confirm",
    "already_subscribed",
    "manage_link",
    "email_change_confirm",
    "email_change_notice",
]
BODIES = {
    Campaign.BodyFormat.MARKDOWN: "Hello {{ first_name }}!\n\nSome *news* and a [link](https://example.org/a).",
    Campaign.BodyFormat.HTML: '<p>Hello {{ first_name }}!</p><p><a href="https://example.org/a">link</a></p>',
}


def campaign(*, purpose_name: str = "Newsletter", **fields: str) -> Campaign:
    # Unsaved: rendering reads fields only, so no database is needed.
    purpose = Purpose(pk=7, slug="newsletter", name=purpose_name)
    values = {"subject": "News for {{ first_name }}", "body": BODIES[Campaign.BodyFormat.MARKDOWN], **fields}
    return Campaign(pk=3, name="News", purpose=purpose, **values)


def recipient(name: str, email: str = "reader@example.org") -> rendering.Recipient:
    return rendering.Recipient(subscriber_id=11, email=email, name=name, consented_at=None)


@given(
    name=hs.hostile_text,
    body_format=st.sampled_from(list(BODIES)),
    fallback=st.sampled_from(["there", "<b>friend</b>", ""]),
)
def test_a_subscribers_name_never_becomes_markup_or_a_header(name, body_format, fallback):
    prepared = rendering.prepare(
        campaign(
            body=BODIES[body_format],
            body_format=body_format,
            preheader="Hi {{ first_name }}",
            first_name_fallback=fallback,
        )
    )
    message = rendering.build_message(prepared, recipient(name))

    mail = assert_headers_clean(message, to="reader@example.org", allowed=CAMPAIGN_HEADERS)
    html = message.alternatives[0][0]
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "onerror" not in html.lower() or "onerror" in "".join(BODIES.values())
    first = name.split()[0] if name.split() else fallback
    assert rendering.escape(first) in html
    assert "%%" not in str(mail["list-unsubscribe"])


@given(subject=hs.hostile_text, preheader=hs.hostile_text, name=hs.hostile_text)
@example(subject="Hi\r\nBcc: victim@example.net", preheader="\n", name="Ada\r\nBcc: victim@example.net")
def test_subject_and_preheader_stay_one_header_line(subject, preheader, name):
    prepared = rendering.prepare(campaign(subject=subject + " {{ first_name }}", preheader=preheader))
    message = rendering.build_message(prepared, recipient(name))
    assert_headers_clean(message, to="reader@example.org", allowed=CAMPAIGN_HEADERS)


@given(purpose_name=hs.hostile_text.filter(lambda s: s.strip()))
@example(purpose_name="News\r\nBcc: victim@example.net").via("a newline in a purpose name reached List-Id")
@example(purpose_name="\x00").via("NUL in a header")
def test_list_id_is_one_line_whatever_the_purpose_is_called(purpose_name):
    prepared = rendering.prepare(campaign(purpose_name=purpose_name))
    message = rendering.build_message(prepared, recipient("Ada"))
    mail = assert_headers_clean(message, to="reader@example.org", allowed=CAMPAIGN_HEADERS)
    assert str(mail["list-id"]).endswith("<newsletter.example.com>")


@given(body=st.text(max_size=400) | hs.hostile_text, body_format=st.sampled_from(list(BODIES)))
def test_any_body_renders_and_every_placeholder_is_filled(body, body_format):
    prepared = rendering.prepare(campaign(body=body, body_format=body_format))
    message = rendering.build_message(prepared, recipient("Ada"))
    assert_headers_clean(message, to="reader@example.org", allowed=CAMPAIGN_HEADERS)
    html = message.alternatives[0][0]
    for placeholder in rendering.PLACEHOLDERS:
        assert placeholder not in html
        assert placeholder not in message.body


@pytest.mark.parametrize("domain", hs.IDN_DOMAINS, ids=[f"idn{n}" for n in range(len(hs.IDN_DOMAINS))])
def test_a_campaign_goes_to_the_internationalised_domain_typed(domain, cases):
    import idna

    message = rendering.build_message(rendering.prepare(campaign()), recipient("Ada", f"ada@{domain}"))
    (to,) = parsed(message)["to"].addresses
    assert idna.decode(to.domain) == idna.decode(idna.encode(domain, uts46=True))
    cases(1)


@given(organisation=hs.hostile_text, name=hs.hostile_text, template=st.sampled_from(EMAIL_TEMPLATES))
@example(
    organisation="Example\r\nBcc: victim@example.net", name="Ada\r\nBcc: x@example.net", template="confirm"
)
def test_transactional_emails_keep_their_headers_whatever_names_they_carry(
    settings, organisation, name, template
):
    settings.ORGANISATION_NAME = organisation
    message = emails.build_email(
        template,
        to="ada@example.org",
        context={
            "name": name,
            "items": [],
            "confirm_url": "https://example.org/c",
            "contact_email": "x@y.z",
            "fresh_hours": 24,
        },
    )
    assert_headers_clean(message, to="ada@example.org", allowed=TRANSACTIONAL_HEADERS)

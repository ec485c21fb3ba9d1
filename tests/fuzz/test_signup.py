"""The signup and manage forms under hostile input: no 500, nothing stored when refused, and
a confirmation email only ever to the address typed, with no header of the visitor's making."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils.html import escape
from hypothesis import assume, given
from hypothesis import strategies as st

from subscribers.addresses import smtp_address
from subscribers.forms import normalise_email
from subscribers.models import ConsentText, Subscriber
from tests.fuzz import strategies as hs
from tests.fuzz.mail import TRANSACTIONAL_HEADERS, assert_headers_clean
from tests.fuzz.records import changed, snapshot

pytestmark = pytest.mark.django_db

ADDRESS_FIELDS = ("address_line1", "address_line2", "postal_code", "city", "country")


def consent_fields() -> list[str]:
    texts = ConsentText.objects.select_related("purpose").filter(purpose__is_active=True)
    return [f"consent_{t.pk}_{channel}" for t in texts for channel in t.purpose.channels]


def expected_address(value: str) -> str | None:
    try:
        return normalise_email(value)
    except Exception:
        return None


@given(
    email=hs.addresses,
    name=st.one_of(st.just(""), hs.hostile_text, st.text(max_size=40)),
    address=st.fixed_dictionaries({f: st.one_of(st.just("1 Way"), hs.hostile_text) for f in ADDRESS_FIELDS}),
    ticks=st.sets(st.integers(0, 20), max_size=4),
    bogus_consent=st.sampled_from(["", "consent_999999_email", "consent_x_email", "consent_\x00"]),
)
def test_signup_never_fails_and_mails_only_the_address_typed(
    client, consent_texts, mailoutbox, email, name, address, ticks, bogus_consent
):
    cache.clear()  # the per-IP rate limit is not what is being tested
    mailoutbox.clear()
    fields = consent_fields()
    data = {"email": email, "name": name, **address}
    data.update({fields[i % len(fields)]: "on" for i in ticks})
    if bogus_consent:
        data[bogus_consent] = "on"
    before = snapshot()

    response = client.post("/", data)

    assert response.status_code in (200, 302, 400), response.status_code
    if response.status_code != 302:
        assert changed(before) == []
        assert mailoutbox == []
        return
    wanted = expected_address(email)
    assert wanted is not None
    assert Subscriber.objects.filter(email__iexact=wanted).exists()
    for message in mailoutbox:  # the confirmation, or "you are already subscribed"
        assert_headers_clean(message, to=smtp_address(wanted), allowed=TRANSACTIONAL_HEADERS)
    stored = Subscriber.objects.get(email__iexact=wanted)
    assert not any(ord(c) < 32 for c in stored.name + "".join(getattr(stored, f) for f in ADDRESS_FIELDS))


@given(name=st.sampled_from(hs.HEADER_INJECTIONS + hs.MARKUP) | hs.nasty_text)
def test_a_name_with_line_breaks_or_controls_is_refused_and_nothing_is_stored(
    client, consent_texts, mailoutbox, name
):
    # Django strips surrounding whitespace first, and Python counts \x1c-\x1f as whitespace.
    assume(any(ord(c) < 32 for c in name.strip()))
    cache.clear()
    mailoutbox.clear()
    before = snapshot()
    response = client.post("/", {"email": "ada@example.org", "name": name, consent_fields()[0]: "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "line breaks and control characters" in page or "Null characters are not allowed" in page
    assert changed(before) == []
    assert mailoutbox == []


# Names the form accepts (no control characters), each carrying markup.
printable = st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs"]), max_size=30)


@given(name=st.sampled_from(hs.MARKUP) | st.builds(lambda t, m: t + m, printable, st.sampled_from(hs.MARKUP)))
def test_markup_in_a_name_reaches_the_confirmation_email_as_text(client, consent_texts, mailoutbox, name):
    assume(name.strip())
    cache.clear()
    mailoutbox.clear()
    # A fresh address each time: a pending request is not mailed again.
    address = f"n{Subscriber.objects.count()}@example.org"
    response = client.post("/", {"email": address, "name": name, consent_fields()[0]: "on"})
    assert response.status_code == 302
    (message,) = mailoutbox
    html = message.alternatives[0][0]
    assert "<script" not in html.lower()
    assert "<img src=x" not in html
    assert escape(name.strip()) in html


@given(email=hs.addresses, website=st.sampled_from(["", "http://spam.example"]))
def test_manage_form_never_fails_and_answers_alike(client, seeded, mailoutbox, email, website):
    cache.clear()
    before = snapshot()
    response = client.post("/manage/", {"email": email, "website": website})
    assert response.status_code in (302, 400)
    assert changed(before) == []

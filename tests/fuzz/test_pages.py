"""The preference centre's forms under hostile input, and every page that shows what a
subscriber typed: no 500, nobody else's records touched, and no script in the page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from hypothesis import given
from hypothesis import strategies as st

from subscribers import links, selectors, services, tokens
from subscribers.models import ConfirmationRequest, ConsentEvent, Subscriber
from tests.fuzz import strategies as hs
from tests.marketing.conftest import WEB, sign_up

pytestmark = pytest.mark.django_db

ACTIONS = [
    "consent",
    "unsubscribe_all",
    "frequency",
    "pause",
    "resume",
    "profile",
    "email",
    "",
    "nope",
    "\x00",
]
FIELDS = [
    "purpose",
    "channel",
    "enabled",
    "consent_text",
    "frequency",
    "months",
    "name",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "country",
    "new_email",
]
field_values = st.one_of(
    hs.hostile_text,
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["1", "0", "email", "postal", "weekly", "monthly", "every", "3", "6"]),
)


class _Elements(HTMLParser):
    """What a browser would make elements of: every tag, and the text of each script."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def assert_no_script(page: str) -> None:
    """No element, attribute or script of the visitor's making (the markup in ``hs.MARKUP``)."""
    parser = _Elements()
    parser.feed(page)
    for tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not (tag == "img" and attrs.get("src") == "x"), (tag, attrs)
        assert not (tag == "script" and not attrs.get("src")), (tag, attrs)
    assert not any("alert(" in script for script in parser.scripts)


@given(
    action=st.sampled_from(ACTIONS),
    fields=st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=6),
)
def test_the_preference_centre_takes_any_post_without_a_500_or_touching_anyone_else(
    client, consent_texts, action, fields
):
    cache.clear()
    ada = Subscriber.objects.filter(email="ada@example.org").first() or sign_up(
        "ada@example.org", consent_texts["newsletter"]
    )
    bob = Subscriber.objects.filter(email="bob@example.org").first() or sign_up(
        "bob@example.org", consent_texts["newsletter"]
    )
    bobs = _rows(bob)
    response = client.post(f"/preferences/{selectors.preferences_token(ada)}/", {"action": action, **fields})
    assert response.status_code in (200, 302, 400, 429), response.status_code
    assert_no_script(response.content.decode())
    assert _rows(bob) == bobs


def _rows(subscriber: Subscriber) -> tuple:
    return (
        Subscriber.objects.filter(pk=subscriber.pk).values().get(),
        list(ConsentEvent.objects.filter(subscriber=subscriber).values_list("pk", flat=True)),
    )


@given(
    name=st.sampled_from(hs.MARKUP) | hs.hostile_text,
    city=st.sampled_from(hs.MARKUP) | hs.hostile_text,
    purpose_name=st.sampled_from(hs.MARKUP),
)
def test_what_people_and_staff_typed_is_shown_as_text_on_every_page(
    client, consent_texts, name, city, purpose_name
):
    # Stored directly: the admin and imports are other ways in than the signup form.
    news = consent_texts["newsletter"]
    news.purpose.name = purpose_name
    news.purpose.save()
    subscriber = Subscriber.objects.filter(email="eve@example.org").first() or sign_up(
        "eve@example.org", news, confirm=False
    )
    # (PostgreSQL itself refuses NUL, so no stored value can hold one.)
    name, city = name.replace("\x00", "")[:150], city.replace("\x00", "")[:100]
    Subscriber.objects.filter(pk=subscriber.pk).update(name=name, city=city)
    request = ConfirmationRequest.objects.filter(subscriber=subscriber).first()
    preferences = selectors.preferences_token(subscriber)
    pages = [
        "/",
        f"/confirm/{tokens.confirmation_token(request.pk)}/",
        f"/u/{links.make('unsubscribe', subscriber.pk, news.purpose_id)}/",
        f"/preferences/{preferences}/",
        f"/preferences/{preferences}/delete/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_script(response.content.decode())
    change = services.email_change_request(
        subscriber=subscriber, new_email="eve.new@example.org", evidence=WEB
    )
    response = client.get(f"/email-change/{tokens.email_change_token(change.pk)}/")
    assert response.status_code == 200
    assert_no_script(response.content.decode())

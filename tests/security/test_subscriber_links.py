"""A subscriber's link reaches their own record and nobody else's.

The token is the only credential on these pages, so: it cannot be re-pointed at another
subscriber, a token of one kind opens no other kind of page, and nothing a link holder
posts can act on another subscriber's record.
"""

from __future__ import annotations

import re

import pytest
from django.core import signing
from django.test import Client

from subscribers import services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentState
from tests.security.world import BOB_AGENT, BOB_IP, World, build_world

pytestmark = pytest.mark.django_db

PAGES = {
    "preferences": ["/preferences/{token}/", "/preferences/{token}/my-data/", "/preferences/{token}/delete/"],
    "unsubscribe": ["/u/{token}/"],
}


@pytest.fixture
def world(consent_texts, settings, tmp_path) -> World:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    return build_world(consent_texts, tmp_path / "outbox")


# "Bob" as a word of the page, not inside a signed token or CSRF value, which are random
# letters and digits and so hold "Bob" now and then (one run in a few hundred).
BOB_NAME = re.compile(rb"(?<![\w/:.-])Bob(?![\w:.-])")


def mentions_bob(world, body: bytes) -> bool:
    return (
        world.bob.email.encode() in body
        or BOB_AGENT.encode() in body
        or BOB_IP.encode() in body
        or BOB_NAME.search(body) is not None
    )


def repointed(token: str, subscriber_id: int) -> str:
    """Ada's token with Bob's id put in, keeping Ada's signature (all an attacker can do)."""
    value, rest = token.split(":", 1)
    _ada, second = value.split(".")
    return f"{signing.b62_encode(subscriber_id)}.{second}:{rest}"


@pytest.mark.parametrize("kind", sorted(PAGES))
def test_a_link_cannot_be_repointed_at_another_subscriber(world, kind):
    token = repointed(world.token(kind), world.bob.pk)
    for template in PAGES[kind]:
        response = Client().get(template.format(token=token))
        assert response.status_code == 400, template
        assert not mentions_bob(world, response.content)


def test_a_subscribers_own_pages_show_nothing_of_anyone_else(world):
    client = Client()
    for template in PAGES["preferences"] + ["/u/{token}/"]:
        kind = "unsubscribe" if template.startswith("/u/") else "preferences"
        response = client.get(template.format(token=world.token(kind)))
        assert response.status_code == 200, template
        body = b"".join(response) if response.streaming else response.content
        assert not mentions_bob(world, body)


@pytest.mark.parametrize(
    ("kind", "page"),
    [
        ("unsubscribe", "/preferences/{token}/"),
        ("preferences", "/u/{token}/"),
        ("confirm", "/email-change/{token}/"),
        ("email_change", "/confirm/{token}/"),
        ("tracking", "/preferences/{token}/"),
        ("confirm", "/preferences/{token}/my-data/"),
    ],
)
def test_no_kind_of_link_opens_another_kinds_page(world, kind, page):
    response = Client().get(page.format(token=world.token(kind)))
    assert response.status_code == 400
    assert world.ada.email.encode() not in response.content


def test_undoing_an_unsubscribe_cannot_restore_someone_elses_consent(world):
    purpose = world.text.purpose
    services.consent_withdraw(
        subscriber=world.bob,
        purpose=purpose,
        channel=Channel.EMAIL,
        evidence=Evidence(source=ConsentEvent.Source.PREFERENCE_CENTRE),
    )
    bobs_withdrawal = ConsentEvent.objects.filter(
        subscriber=world.bob, kind=ConsentEvent.Kind.WITHDRAWN
    ).get()
    response = Client().post(
        f"/u/{world.token('unsubscribe')}/", {"undo": "1", "withdrawal": [bobs_withdrawal.pk]}
    )
    assert response.status_code == 400  # nothing of Ada's to restore, and Bob's is not hers
    state = ConsentState.objects.get(subscriber=world.bob, purpose=purpose, channel=Channel.EMAIL)
    assert state.status == ConsentState.Status.WITHDRAWN

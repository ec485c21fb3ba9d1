"""Keys can be rotated without breaking what was already sent, and the one that cannot be
rotated (``ADDRESS_HASH_KEY``) cannot be changed by accident.

- ``SECRET_KEY``: every kind of emailed link made under the old key still works once the
  old key is in ``SECRET_KEY_FALLBACKS``, and stops working when it leaves.
- ``ANYMAIL_WEBHOOK_SECRET``: several ``user:password`` pairs are accepted at once.
- ``ADDRESS_HASH_KEY``: a changed key stops ``migrate`` (``subscribers.E001``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from subscribers import selectors
from subscribers.models import Subscriber, Suppression
from subscribers.services import address_hash
from tests.marketing import provider_payloads as p
from tests.security.world import build_world

pytestmark = pytest.mark.django_db

OLD_KEY = "old-secret-key-" + "o" * 40
NEW_KEY = "new-secret-key-" + "n" * 40
SETTINGS_FILE = Path(__file__).resolve().parents[2] / "config" / "settings.py"

# Every kind of link an email carries, and the page it opens with the right key.
LINKS = {
    "confirm": ("/confirm/{token}/", 200),
    "unsubscribe": ("/u/{token}/", 200),
    "preferences": ("/preferences/{token}/", 200),
    "preferences (data download)": ("/preferences/{token}/my-data/", 200),
    "email_change": ("/email-change/{token}/", 200),
    "tracking": ("/t/{token}/1/", 302),
}


@pytest.fixture
def old_links(consent_texts, settings, tmp_path) -> dict[str, str]:
    """The path of every kind of link, made while ``OLD_KEY`` was the secret key."""
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = OLD_KEY, []
    world = build_world(consent_texts, tmp_path / "outbox")
    world.campaign.body = "See [the tour](https://example.com/tour)."
    world.campaign.save(update_fields=["body"])
    return {
        kind: page.format(token=world.token(kind.split(" ")[0])) for kind, (page, _status) in LINKS.items()
    }


@pytest.mark.parametrize("kind", sorted(LINKS))
def test_links_emailed_under_the_old_key_work_while_it_is_a_fallback(old_links, settings, kind):
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = NEW_KEY, [OLD_KEY]
    assert Client().get(old_links[kind]).status_code == LINKS[kind][1]
    # Once the old key is retired, its links are refused like any forgery.
    settings.SECRET_KEY_FALLBACKS = []
    assert Client().get(old_links[kind]).status_code in (400, 404)


def test_several_webhook_secrets_are_accepted_during_a_rotation(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ["hooks:old-secret", "hooks:new-secret"]}
    payload = p.postmark_delivery(email="ada@example.org", message_id="m-1")
    for secret in ("hooks:old-secret", "hooks:new-secret"):
        assert p.post(Client(), "postmark", payload, secret=secret).status_code == 200, secret
    assert p.post(Client(), "postmark", payload, secret="hooks:guess").status_code == 401


def test_a_changed_address_hash_key_stops_migrate_before_suppressions_are_lost(
    consent_texts, settings, tmp_path
):
    world = build_world(consent_texts, tmp_path / "outbox")
    Suppression.objects.create(email_hash=world.bob.email_hash, reason=Suppression.Reason.COMPLAINT)
    purpose_id = world.text.purpose_id
    assert world.bob.pk not in {c.subscriber_id for c in selectors.sendable_consents(purpose_id=purpose_id)}
    call_command("check", "--database", "default")  # the key the hashes were made with: clean

    settings.ADDRESS_HASH_KEY = "someone-changed-it"
    # What is at stake: the complaint no longer matches the address it was about.
    assert Subscriber.objects.get(pk=world.bob.pk).email_hash != address_hash("bob@example.net")
    with pytest.raises(SystemCheckError, match=r"subscribers\.E001"):
        call_command("check", "--database", "default")
    with pytest.raises(SystemCheckError, match=r"subscribers\.E001"):
        call_command("migrate", "--check", verbosity=0, skip_checks=False)


def test_no_secret_is_written_in_the_settings():
    """Every setting named like a secret is read from the environment; the one literal is the
    development key, refused by the code above it unless DEBUG is on."""
    tree = ast.parse(SETTINGS_FILE.read_text())
    literal = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            for target in node.targets:
                name = getattr(target, "id", "")
                # RATELIMIT_IP_META_KEY names a function, not a key.
                if name != "RATELIMIT_IP_META_KEY" and any(
                    w in name for w in ("SECRET", "KEY", "PASSWORD", "TOKEN")
                ):
                    literal.append((name, node.value.value))
    assert literal == [("SECRET_KEY", "insecure-development-key-do-not-use-in-production")]

"""System checks guarding the keyed address hashes (``ADDRESS_HASH_KEY``).

The suppression list holds addresses only as HMACs under ``ADDRESS_HASH_KEY``; erased
addresses survive nowhere else. A changed key would make every suppression silently stop
matching, so mail would go again to people who bounced, complained or asked to be
forgotten. The key cannot be rotated (the erased addresses needed to rehash are gone by
design); these checks make sure it is not changed by accident.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError

SAMPLE = 50


@register(Tags.database)
def address_hash_key_unchanged(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[CheckMessage]:
    """subscribers.E001: stored hashes were made under another key. Runs with ``migrate`` and
    ``check --database default``, as a deploy does."""
    from subscribers.models import Subscriber
    from subscribers.services import address_hash

    problems: list[CheckMessage] = []
    for alias in databases or ():
        try:
            # Every subscriber who still holds an address stores its hash: recompute a few.
            held = list(
                Subscriber.objects.using(alias)
                .filter(email__isnull=False)
                .exclude(email_hash="")
                .order_by("-pk")
                .values_list("email", "email_hash")[:SAMPLE]
            )
        except DatabaseError:
            continue  # not migrated yet: nothing hashed to compare
        if any(address_hash(email or "") != stored for email, stored in held):
            problems.append(
                Error(
                    "ADDRESS_HASH_KEY is not the key the stored address hashes were made with: every "
                    "suppressed address (bounces, complaints, erasures) would be mailed again.",
                    hint="Put back the previous ADDRESS_HASH_KEY (before a SECRET_KEY rotation it "
                    "defaulted to SECRET_KEY). It cannot be rotated; see README, 'Security and access'.",
                    id="subscribers.E001",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def address_hash_key_is_its_own(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """subscribers.W002: ADDRESS_HASH_KEY left to default to SECRET_KEY."""
    if settings.ADDRESS_HASH_KEY != settings.SECRET_KEY:
        return []
    return [
        Warning(
            "ADDRESS_HASH_KEY is not set, so it is SECRET_KEY: rotating SECRET_KEY would silently "
            "lift every suppression.",
            hint="Set ADDRESS_HASH_KEY to the current SECRET_KEY's value now, once; then SECRET_KEY "
            "can be rotated with SECRET_KEY_FALLBACKS.",
            id="subscribers.W002",
        )
    ]

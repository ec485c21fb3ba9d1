"""Signed, scoped, expiring tokens for the per-recipient links in campaign emails.

A token is ``<subscriber>.<purpose|generation>:<timestamp>:<signature>``: the ids in base62, the
issue time in base62 seconds, and an HMAC-SHA256 (``django.core.signing.TimestampSigner``)
keyed by ``SECRET_KEY`` with a salt per scope, so a preferences token is not an
unsubscribe token and no token can be altered or made up. Verification also tries
``SECRET_KEY_FALLBACKS``, so rotating the key keeps links already emailed working.
A token is about 60 characters.

Tokens expire after ``LINK_MAX_AGE_DAYS`` (default 365). CAN-SPAM wants an opt-out to work
for at least 30 days after sending; we promise 60 (COMPLIANCE.md), so never set it lower.

Revocation: a preferences token carries the subscriber's ``link_generation``; raising it
(after an address change, or on request) makes every preferences link already sent stop
working. Unsubscribe tokens are never revoked: they can only ever reduce mail, and a
person clicking "unsubscribe" in an old email must not be turned away.

The ids are signed, not encrypted: a token reveals the subscriber's numeric id to whoever
holds the email it was sent in, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from django.conf import settings
from django.core import signing
from django.urls import Resolver404, resolve

Scope = Literal["unsubscribe", "preferences"]

# CAN-SPAM: 30 days after sending at least; COMPLIANCE.md promises 60.
MIN_MAX_AGE_DAYS = 60
# Longer than any token we issue; longer input is refused before any work is done.
MAX_TOKEN_LENGTH = 200

_SCOPES: dict[str, bool] = {"unsubscribe": True, "preferences": False}  # scope -> carries a purpose


@dataclass(frozen=True)
class LinkClaims:
    """What a valid token says: who, for which purpose (unsubscribe only), issued when."""

    scope: str
    subscriber_id: int
    purpose_id: int | None
    issued_at: datetime
    generation: int | None = None  # preferences links only

    def is_fresh(self, max_age: timedelta) -> bool:
        """Issued within ``max_age``: the bar for exporting or changing personal data."""
        return datetime.now(tz=UTC) - self.issued_at <= max_age


def link_max_age() -> timedelta:
    """How long links stay valid: ``LINK_MAX_AGE_DAYS``, never less than 60 days."""
    days = settings.LINK_MAX_AGE_DAYS
    return timedelta(days=max(days, MIN_MAX_AGE_DAYS))


def _signer(scope: str) -> signing.TimestampSigner:
    if scope not in _SCOPES:
        raise ValueError(f"unknown link scope {scope!r}")
    return signing.TimestampSigner(salt=f"subscribers.links.{scope}")


def make(scope: Scope, subscriber_id: int, purpose_id: int | None = None, *, generation: int = 1) -> str:
    """A token for ``scope``: "unsubscribe" needs a purpose, "preferences" takes none but
    carries the subscriber's ``link_generation``."""
    if _SCOPES.get(scope) != (purpose_id is not None):
        raise ValueError(f"a {scope!r} link {'needs' if _SCOPES.get(scope) else 'takes no'} purpose")
    second = purpose_id if purpose_id is not None else generation
    value = signing.b62_encode(int(subscriber_id)) + "." + signing.b62_encode(int(second))
    return _signer(scope).sign(value)


def read(scope: Scope, token: str, max_age: timedelta | int | None = None) -> LinkClaims | None:
    """The claims in ``token`` if we made it for ``scope`` and it has not expired, else None.

    Never raises for bad input: forged, altered, truncated, expired and other-scope tokens
    all give None. ``max_age`` (a timedelta or seconds) defaults to ``LINK_MAX_AGE_DAYS``.
    """
    signer = _signer(scope)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    limit = link_max_age() if max_age is None else max_age
    try:
        value = signer.unsign(token, max_age=limit)
        _value, timestamp, _signature = token.rsplit(signer.sep, 2)
        issued = datetime.fromtimestamp(signing.b62_decode(timestamp), tz=UTC)
        parts = [signing.b62_decode(part) for part in value.split(".")]
    except (signing.BadSignature, ValueError, OverflowError):
        return None
    wants_purpose = _SCOPES[scope]
    if len(parts) != 2 or min(parts) <= 0:
        return None
    return LinkClaims(
        scope=scope,
        subscriber_id=parts[0],
        purpose_id=parts[1] if wants_purpose else None,
        issued_at=issued,
        generation=None if wants_purpose else parts[1],
    )


def page_without_token(url: str) -> str:
    """``url`` with the token of a link page replaced by its name (``/preferences/<token>/``).

    Evidence names the page a person acted on, and proofs and exports are handed to staff,
    regulators and the person; a preferences token is a credential for a year. Pages without
    a token keep their whole address, query included.
    """
    parts = urlsplit(url)
    path = unquote(parts.path)
    try:
        match = resolve(path)
    except Resolver404:
        return url
    if not match.kwargs:
        return url
    for name, value in match.kwargs.items():
        path = path.replace(str(value), f"<{name}>")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

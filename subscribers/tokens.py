"""Signed tokens for links in emails.

A confirmation token is the request's UUID signed with ``SECRET_KEY`` (and verified
against ``SECRET_KEY_FALLBACKS`` too, so rotating the key keeps sent links working).
Expiry and single use are decided by the database row, not the token.
"""

from __future__ import annotations

import uuid

from django.core import signing

_CONFIRM_SALT = "subscribers.confirm"


def confirmation_token(request_id: uuid.UUID | str) -> str:
    return signing.Signer(salt=_CONFIRM_SALT).sign(uuid.UUID(str(request_id)).hex)


def confirmation_request_id(token: str) -> uuid.UUID | None:
    """The request id in ``token``, or None if it was not made by us or was altered."""
    if len(token) > 200:
        return None
    try:
        return uuid.UUID(hex=signing.Signer(salt=_CONFIRM_SALT).unsign(token))
    except (signing.BadSignature, ValueError):
        return None

"""Signed tokens for links in emails.

A confirmation token is the request's UUID signed with ``SECRET_KEY`` (and verified
against ``SECRET_KEY_FALLBACKS`` too, so rotating the key keeps sent links working).
Expiry and single use are decided by the database row, not the token. An address-change
token is the same for an ``EmailChangeRequest``, under its own salt, so neither kind of
token opens the other's page.
"""

from __future__ import annotations

import uuid

from django.core import signing

_CONFIRM_SALT = "subscribers.confirm"
_EMAIL_CHANGE_SALT = "subscribers.email_change"


def confirmation_token(request_id: uuid.UUID | str) -> str:
    return _sign(_CONFIRM_SALT, request_id)


def confirmation_request_id(token: str) -> uuid.UUID | None:
    """The request id in ``token``, or None if it was not made by us or was altered."""
    return _unsign(_CONFIRM_SALT, token)


def email_change_token(change_id: uuid.UUID | str) -> str:
    return _sign(_EMAIL_CHANGE_SALT, change_id)


def email_change_request_id(token: str) -> uuid.UUID | None:
    """The address-change request id in ``token``, or None if it was not made by us or was altered."""
    return _unsign(_EMAIL_CHANGE_SALT, token)


def _sign(salt: str, request_id: uuid.UUID | str) -> str:
    return signing.Signer(salt=salt).sign(uuid.UUID(str(request_id)).hex)


def _unsign(salt: str, token: str) -> uuid.UUID | None:
    if len(token) > 200:
        return None
    try:
        return uuid.UUID(hex=signing.Signer(salt=salt).unsign(token))
    except (signing.BadSignature, ValueError):
        return None

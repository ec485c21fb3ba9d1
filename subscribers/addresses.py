"""An address as it goes on the wire.

Addresses are stored as typed and validated (``forms.normalise_email``): an internationalised
domain stays in Unicode, so people see it as they wrote it. SMTP and the providers' APIs
want ASCII, and Django's own conversion (``sanitize_address``) uses Python's IDNA 2003
codec, which maps ``faß.example`` to ``fass.example``: somebody else's domain. So the
domain is encoded here with IDNA 2008 (the ``idna`` package, which email-validator uses),
before Django ever sees it. Non-ASCII local parts need SMTPUTF8 end to end and are refused
at signup instead.

The other way round, an address a provider reports back is the one we sent to, with the
domain in ASCII; ``hash_form`` turns it back into the form addresses are stored and hashed in.
"""

from __future__ import annotations

import idna


def smtp_address(email: str) -> str:
    """``email`` with its domain in ASCII (IDNA 2008, RFC 5891); ASCII addresses unchanged.

    A domain IDNA 2008 refuses (symbols, emoji: never accepted by our validation, but an old
    import may hold one) is left for Django, whose IDNA 2003 is what such domains were
    registered under.
    """
    if email.isascii():
        return email
    local, _at, domain = email.rpartition("@")
    try:
        return f"{local}@{smtp_domain(domain)}"
    except idna.IDNAError:
        return email


def smtp_domain(domain: str) -> str:
    """A domain in ASCII (IDNA 2008); raises ``idna.IDNAError`` for one that cannot be."""
    if domain.isascii():
        return domain.lower()
    return idna.encode(domain, uts46=True).decode("ascii")


def hash_form(email: str) -> str:
    """``email`` as its keyed hash is taken: trimmed, lower-cased, the domain in Unicode.

    Stored addresses keep an internationalised domain in Unicode (``forms.normalise_email``),
    while bounces and complaints name the ASCII form we sent to (``xn--`` labels): both must
    give the same hash, or a bounce would never suppress the address it is about.
    """
    email = email.strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or "xn--" not in domain:
        return email
    try:
        return f"{local}@{idna.decode(domain)}"
    except idna.IDNAError:  # not a valid A-label: hashed as given, as before
        return email

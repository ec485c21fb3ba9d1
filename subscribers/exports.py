"""A subscriber's own data, as one JSON document (GDPR Art. 15 and 20), and the registry that
lets upper layers add to it and to an erasure.

``subscribers`` never imports ``marketing``; campaign deliveries still belong in the
download and their provider errors must still go on erasure. So an upper app registers,
from its ``AppConfig.ready()``:

* ``register_section(name, fn)``: ``fn(subscriber)`` returns JSON-serialisable data, put
  under ``name`` in the export;
* ``register_erasure_hook(fn)``: ``fn(subscriber)`` removes that app's personal data of the
  subscriber. It runs inside ``services.subscriber_erase``'s transaction, so it must not
  call the network; an exception in it rolls the whole erasure back.

The export is a read: nothing here writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone

from subscribers import selectors
from subscribers.models import ConsentEvent, ConsentState, ConsentText, Subscriber

Section = Callable[[Subscriber], Any]
ErasureHook = Callable[[Subscriber], None]

# Sections the export always has; a registered section may not take one of these names.
CORE_SECTIONS = frozenset({"format", "exported_at", "controller", "profile", "consents", "events"})
FORMAT = "subscriber-data/1"

_sections: dict[str, Section] = {}
_erasure_hooks: list[ErasureHook] = []


def register_section(name: str, fn: Section) -> None:
    """Add ``fn(subscriber)`` to every export under ``name`` (registering again replaces it)."""
    if name in CORE_SECTIONS:
        raise ValueError(f"{name!r} is a section of the export itself")
    _sections[name] = fn


def register_erasure_hook(fn: ErasureHook) -> None:
    """Run ``fn(subscriber)`` in every erasure, while the subscriber still holds its address
    and hash (consents already withdrawn, evidence already blanked)."""
    if fn not in _erasure_hooks:  # ready() may run more than once (tests, management commands)
        _erasure_hooks.append(fn)


def erasure_hooks() -> list[ErasureHook]:
    return list(_erasure_hooks)


def subscriber_export(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything we hold about ``subscriber``: profile, current consents, every ledger event
    with the full consent text shown and the evidence kept, then the registered sections."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "exported_at": timezone.now().isoformat(),
        "controller": {"name": settings.ORGANISATION_NAME, "address": settings.ORGANISATION_ADDRESS},
        "profile": _profile(subscriber),
        "consents": _consents(subscriber),
        "events": _events(subscriber),
        "suppression": _suppression(subscriber),
    }
    for name, fn in _sections.items():
        data[name] = fn(subscriber)
    return data


def _suppression(subscriber: Subscriber) -> dict[str, Any] | None:
    """Why nothing is sent to the address whatever the consents say, if something stops it."""
    held = selectors.suppression_in_force(subscriber=subscriber)
    if held is None:
        return None
    return {"reason": held.reason, "why": held.get_reason_display(), "since": held.created_at.isoformat()}


def _profile(subscriber: Subscriber) -> dict[str, Any]:
    return {
        "id": subscriber.pk,
        "email": subscriber.email,
        "name": subscriber.name,
        "language": subscriber.language,
        "address_line1": subscriber.address_line1,
        "address_line2": subscriber.address_line2,
        "postal_code": subscriber.postal_code,
        "city": subscriber.city,
        "country": subscriber.country,
        "created_at": subscriber.created_at.isoformat(),
        "paused_until": _iso(subscriber.paused_until),
    }


def _consents(subscriber: Subscriber) -> list[dict[str, Any]]:
    states = ConsentState.objects.filter(subscriber=subscriber).select_related("purpose", "consent_text")
    return [
        {
            "purpose": s.purpose.slug,
            "purpose_name": s.purpose.name,
            "channel": s.channel,
            "status": s.status,
            "frequency": s.frequency,
            "consent_text_version": s.consent_text.version,
            "requested_at": _iso(s.requested_at),
            "confirmed_at": _iso(s.confirmed_at),
            "withdrawn_at": _iso(s.withdrawn_at),
        }
        for s in states
    ]


def _events(subscriber: Subscriber) -> list[dict[str, Any]]:
    events = (
        ConsentEvent.objects.filter(subscriber=subscriber)
        .select_related("purpose", "consent_text", "evidence")
        .order_by("seq")
    )
    rows = []
    for event in events:
        rows.append(
            {
                "position": event.seq,
                "event": event.kind,
                "at": event.occurred_at.isoformat(),
                "purpose": event.purpose.slug if event.purpose else None,
                "channel": event.channel or None,
                "source": event.source,
                # Who acted, by kind only: a staff member's user name is theirs, not the subscriber's.
                "actor": event.actor,
                "consent_text": _text(event.consent_text) if event.consent_text else None,
                **selectors.event_evidence(event),
            }
        )
    return rows


def _text(text: ConsentText) -> dict[str, Any]:
    return {
        "version": text.version,
        "language": text.language,
        "published_at": text.published_at.isoformat(),
        **{name: getattr(text, name) for name in ConsentText.CONTENT_FIELDS},
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None

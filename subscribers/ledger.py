"""Append to and verify the hash-chained consent ledger.

Each subscriber has one chain. An event's hash is SHA-256 over a canonical JSON of its
content (including the digest of the consent text it points at and the salted digest of
its evidence) and the previous event's hash. The subscriber row holds the chain head, so a
removed tail is noticed too. Appending locks only that subscriber's row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from subscribers.models import (
    Channel,
    ConfirmationRequest,
    ConsentEvent,
    ConsentEvidence,
    ConsentText,
    Purpose,
    Subscriber,
)

GENESIS = "0" * 64


@dataclass(frozen=True)
class Evidence:
    """How a ledger event came about: where, from which client, by whom."""

    source: str
    actor: str = ConsentEvent.Actor.SUBSCRIBER
    ip_address: str | None = None
    user_agent: str = ""
    page_url: str = ""
    submitted: dict[str, Any] = field(default_factory=dict)
    actor_user_id: int | None = None
    actor_label: str = ""


def text_digest(text: ConsentText) -> str:
    content = {name: getattr(text, name) for name in ConsentText.CONTENT_FIELDS}
    content.update(purpose=text.purpose_id, language=text.language, version=text.version)
    return _sha256(content)


def evidence_digest(
    *, salt: str, ip_address: str | None, user_agent: str, page_url: str, submitted: Any
) -> str:
    return _sha256(
        {"salt": salt, "ip": ip_address, "ua": user_agent, "url": page_url, "submitted": submitted}
    )


def event_hash(
    *,
    subscriber_id: int,
    seq: int,
    purpose_id: int | None,
    channel: str,
    kind: str,
    consent_text_id: int | None,
    consent_text_digest: str | None,
    request_id: Any,
    occurred_at: datetime,
    source: str,
    actor: str,
    actor_user_id: int | None,
    actor_label: str,
    evidence_digest: str,
    prev_hash: str,
) -> str:
    return _sha256(
        {
            "subscriber": subscriber_id,
            "seq": seq,
            "purpose": purpose_id,
            "channel": channel,
            "kind": kind,
            "text": consent_text_id,
            "text_digest": consent_text_digest,
            "request": str(request_id) if request_id else None,
            "at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            "source": source,
            "actor": actor,
            "actor_user": actor_user_id,
            "actor_label": actor_label,
            "evidence": evidence_digest,
            "prev": prev_hash,
        }
    )


@dataclass(frozen=True)
class Entry:
    """What one event says: consent events name a purpose, a channel and the text version;
    events about the subscriber as a whole (profile, pause, erasure) pass ``purpose=None,
    channel=""``."""

    purpose: Purpose | None
    channel: Channel | str
    kind: ConsentEvent.Kind | str
    consent_text: ConsentText | None


def append(
    subscriber: Subscriber,
    *,
    purpose: Purpose | None,
    channel: Channel | str,
    kind: ConsentEvent.Kind | str,
    consent_text: ConsentText | None,
    evidence: Evidence,
    request: ConfirmationRequest | None = None,
    occurred_at: datetime | None = None,
) -> ConsentEvent:
    """Append one event to ``subscriber``'s chain (see ``append_many``)."""
    entry = Entry(purpose=purpose, channel=channel, kind=kind, consent_text=consent_text)
    [event] = append_many(subscriber, [entry], evidence=evidence, request=request, occurred_at=occurred_at)
    return event


def append_many(
    subscriber: Subscriber,
    entries: Sequence[Entry],
    *,
    evidence: Evidence,
    request: ConfirmationRequest | None = None,
    occurred_at: datetime | None = None,
) -> list[ConsentEvent]:
    """Append ``entries`` to ``subscriber``'s chain, in order, with the same evidence.

    Three statements whatever the number of entries (events, their evidence, the chain
    head): a signup ticking several boxes costs what one box does. Each event gets its own
    salt, so no two evidence digests can be compared.

    The caller holds ``subscriber`` locked (``select_for_update``, or a row it has just
    inserted) inside its transaction; the unique (subscriber, seq) constraint catches a
    caller that did not.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("ledger.append must run inside the caller's transaction")
    if any((e.purpose is None) != (e.consent_text is None) for e in entries):
        raise ValueError("a consent event names both its purpose and its text version; others neither")
    occurred_at = occurred_at or timezone.now()
    seq = subscriber.ledger_seq
    prev = subscriber.ledger_head or GENESIS
    events: list[ConsentEvent] = []
    evidences: list[ConsentEvidence] = []
    for entry in entries:
        seq += 1
        salt = secrets.token_hex(16)
        e_digest = evidence_digest(
            salt=salt,
            ip_address=evidence.ip_address,
            user_agent=evidence.user_agent,
            page_url=evidence.page_url,
            submitted=evidence.submitted,
        )
        purpose, consent_text = entry.purpose, entry.consent_text
        event = ConsentEvent(
            subscriber=subscriber,
            seq=seq,
            purpose=purpose,
            channel=str(entry.channel),
            kind=str(entry.kind),
            consent_text=consent_text,
            request=request,
            occurred_at=occurred_at,
            source=evidence.source,
            actor=evidence.actor,
            actor_user_id=evidence.actor_user_id,
            actor_label=evidence.actor_label,
            evidence_digest=e_digest,
            prev_hash=prev,
        )
        event.hash = event_hash(
            subscriber_id=subscriber.pk,
            seq=seq,
            purpose_id=purpose.pk if purpose else None,
            channel=event.channel,
            kind=event.kind,
            consent_text_id=consent_text.pk if consent_text else None,
            consent_text_digest=consent_text.digest if consent_text else None,
            request_id=request.pk if request else None,
            occurred_at=occurred_at,
            source=event.source,
            actor=event.actor,
            actor_user_id=event.actor_user_id,
            actor_label=event.actor_label,
            evidence_digest=e_digest,
            prev_hash=prev,
        )
        prev = event.hash
        events.append(event)
        evidences.append(
            ConsentEvidence(
                ip_address=evidence.ip_address,
                user_agent=evidence.user_agent,
                page_url=evidence.page_url,
                submitted=evidence.submitted,
                salt=salt,
            )
        )
    if not events:
        return []
    ConsentEvent.objects.bulk_create(events)
    for event, record in zip(events, evidences, strict=True):
        record.event = event
    ConsentEvidence.objects.bulk_create(evidences)
    subscriber.ledger_seq = seq
    subscriber.ledger_head = prev
    Subscriber.objects.filter(pk=subscriber.pk).update(ledger_seq=seq, ledger_head=prev)
    return events


@dataclass(frozen=True)
class LedgerProblem:
    event_id: int | None
    subscriber_id: int
    seq: int | None
    reason: str

    def __str__(self) -> str:
        where = f"event #{self.event_id} (subscriber {self.subscriber_id}, position {self.seq})"
        if self.event_id is None:
            where = f"subscriber {self.subscriber_id}"
        return f"{where}: {self.reason}"


_VERIFY_FIELDS = (
    "id",
    "subscriber_id",
    "seq",
    "purpose_id",
    "channel",
    "kind",
    "consent_text_id",
    "consent_text__digest",
    "request_id",
    "occurred_at",
    "source",
    "actor",
    "actor_user_id",
    "actor_label",
    "evidence_digest",
    "prev_hash",
    "hash",
    "subscriber__ledger_seq",
    "subscriber__ledger_head",
    "evidence__salt",
    "evidence__ip_address",
    "evidence__user_agent",
    "evidence__page_url",
    "evidence__submitted",
    "evidence__erased_at",
)


def verify(*, subscriber_ids: list[int] | None = None, chunk_size: int = 5000) -> Iterator[LedgerProblem]:
    """Walk every chain in order and yield each problem found, streaming the ledger."""
    rows = ConsentEvent.objects.order_by("subscriber_id", "seq").values(*_VERIFY_FIELDS)
    if subscriber_ids is not None:
        rows = rows.filter(subscriber_id__in=subscriber_ids)
    current: int | None = None
    prev_hash = GENESIS
    expected_seq = 1
    tail: dict[str, Any] | None = None
    for row in rows.iterator(chunk_size=chunk_size):
        if row["subscriber_id"] != current:
            if tail is not None:
                yield from _check_head(tail)
            current, prev_hash, expected_seq = row["subscriber_id"], GENESIS, 1
        problem = _check_event(row, expected_seq=expected_seq, prev_hash=prev_hash)
        if problem:
            yield LedgerProblem(row["id"], row["subscriber_id"], row["seq"], problem)
        prev_hash, expected_seq, tail = row["hash"], row["seq"] + 1, row
    if tail is not None:
        yield from _check_head(tail)
    yield from _check_headless_chains(subscriber_ids)


def _check_event(row: dict[str, Any], *, expected_seq: int, prev_hash: str) -> str | None:
    if row["seq"] != expected_seq:
        return f"expected position {expected_seq}: an event is missing"
    if row["prev_hash"] != prev_hash:
        return "does not follow the previous event (prev_hash differs)"
    if row["evidence__salt"] is None:
        return "its evidence record is missing"
    if row["evidence__erased_at"] is None:
        digest = evidence_digest(
            salt=row["evidence__salt"],
            ip_address=row["evidence__ip_address"],
            user_agent=row["evidence__user_agent"],
            page_url=row["evidence__page_url"],
            submitted=row["evidence__submitted"],
        )
        if digest != row["evidence_digest"]:
            return "its evidence (IP, user agent, page or submitted data) was changed"
    recomputed = event_hash(
        subscriber_id=row["subscriber_id"],
        seq=row["seq"],
        purpose_id=row["purpose_id"],
        channel=row["channel"],
        kind=row["kind"],
        consent_text_id=row["consent_text_id"],
        consent_text_digest=row["consent_text__digest"],
        request_id=row["request_id"],
        occurred_at=row["occurred_at"],
        source=row["source"],
        actor=row["actor"],
        actor_user_id=row["actor_user_id"],
        actor_label=row["actor_label"],
        evidence_digest=row["evidence_digest"],
        prev_hash=row["prev_hash"],
    )
    if recomputed != row["hash"]:
        return "its content does not match its hash (the event or its consent text was changed)"
    return None


def _check_head(tail: dict[str, Any]) -> Iterator[LedgerProblem]:
    if tail["subscriber__ledger_seq"] != tail["seq"] or tail["subscriber__ledger_head"] != tail["hash"]:
        yield LedgerProblem(
            tail["id"],
            tail["subscriber_id"],
            tail["seq"],
            f"the chain ends here but the subscriber's head is position {tail['subscriber__ledger_seq']}: "
            "events after it were removed",
        )


def _check_headless_chains(subscriber_ids: list[int] | None) -> Iterator[LedgerProblem]:
    """Subscribers whose head says they have events, but who have none left."""
    orphans = Subscriber.objects.filter(ledger_seq__gt=0, consent_events__isnull=True)
    if subscriber_ids is not None:
        orphans = orphans.filter(pk__in=subscriber_ids)
    for sub_id, seq in orphans.values_list("pk", "ledger_seq").iterator():
        yield LedgerProblem(None, sub_id, None, f"head says {seq} events but none remain")


def _sha256(content: Any) -> str:
    data = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(data.encode()).hexdigest()

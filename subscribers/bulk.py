"""Create many demo subscribers with confirmed consent, in set-based SQL (``seed_demo --subscribers``).

Each demo subscriber (``demo-000000123@example.net``) gets, for every mailing purpose offering
email that has a published consent text, a ``requested`` and a ``confirmed`` ledger event with
evidence, and an ACTIVE consent state: the rows ``services.subscriber_sign_up`` and
``services.subscription_confirm`` would write, but computed by the database, with no Python
loop over subscribers. The hashes are the ones ``subscribers.ledger`` computes, so
``verify_ledger`` passes. Every call ADDS ``count`` subscribers, numbered after the highest
existing demo address, all in one transaction.

How:
1. reserve id ranges for the subscribers and their events (so every row can be computed
   before it is inserted: an event's hash needs its subscriber's id);
2. per chunk, fill one temporary row per subscriber with its address, salts, evidence
   digests and its chain of event hashes (a chain is sequential, so each link is one nested
   SELECT level);
3. INSERT ... SELECT the subscribers, events, evidence and states from those rows.

SHA-256 is PostgreSQL's built-in ``sha256()``; HMAC-SHA256 (``services.address_hash``) is
built from it (RFC 2104) so no extension is needed. On SQLite the same statements call
Python functions registered on the connection.

Where the time goes on PostgreSQL (1M subscribers = 1M + 6M + 6M + 3M rows) and what is done:
- per-row foreign-key checks (one query per row and key) are skipped
  (``session_replication_role = replica``) when the role may and every key of the seeded
  tables points at a row the transaction inserted or locked itself,
  see ``_may_skip_foreign_key_checks``;
- filling indexes row by row (random keys: hashes, addresses) cost more than the rows: when
  the seeding is large next to what is there, the indexes are dropped and built again in one
  sort each, and the rows go in in id order, so the primary keys only append;
- each ``sha256()`` call costs ~1 µs however short its input, 16 per subscriber: the two
  halves of a chunk are hashed in two processes (Parallel Append under CREATE TABLE AS);
- what is left is mostly the inserting itself (~2.5 µs a row) and the unique index on the
  event hashes (a sort of 6M strings under the database's collation).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from subscribers import services
from subscribers.ledger import GENESIS
from subscribers.models import Channel, ConsentEvent, ConsentState, ConsentText, Purpose

EMAIL_PATTERN = "demo-%@example.net"
NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
SUBMITTED = {"demo": True}
ACTOR_LABEL = "seed_demo"


@dataclass(frozen=True)
class SeedResult:
    subscribers: int
    events: int
    evidence: int
    states: int
    seconds: float


@dataclass(frozen=True)
class _Step:
    """One ledger event every demo subscriber gets: its position in the chain and content."""

    seq: int
    text: ConsentText
    kind: str
    occurred_at: Any


def seed_subscribers(*, count: int, chunk_size: int = 100_000) -> SeedResult:
    """Add ``count`` demo subscribers with confirmed mailing consent, in one transaction."""
    started = time.monotonic()
    steps = _steps()
    # Salts are a keyed function of (number, pair) under a key drawn once per run and then
    # forgotten: as unpredictable as drawing them, and one SHA-512 yields four of them.
    key = secrets.token_bytes(32)
    pg = connection.vendor == "postgresql"
    outermost = not connection.in_atomic_block
    rebuilt: list[str] = []
    with transaction.atomic():
        if pg:
            restore, rebuilt = _begin_postgresql(steps, count=count, outermost=outermost)
        else:
            _register_sqlite_functions(key)
        first = _next_demo_number()
        sub_base = _reserve_ids("subscribers_subscriber", count)
        event_base = _reserve_ids("subscribers_consentevent", count * len(steps))
        for done in range(0, count, chunk_size):
            _seed_chunk(
                first=first + done,
                size=min(chunk_size, count - done),
                steps=steps,
                key=key,
                sub_id=sub_base + done,
                event_id=event_base + done * len(steps),
            )
        if pg:
            _end_postgresql(rebuilt, restore)
    if rebuilt and not connection.in_atomic_block:
        with connection.cursor() as cursor:  # fresh statistics for the planner, as after a load
            cursor.execute(f"ANALYZE {', '.join(_SEEDED_TABLES)}")
    return SeedResult(
        subscribers=count,
        events=count * len(steps),
        evidence=count * len(steps),
        states=count * len(steps) // 2,
        seconds=time.monotonic() - started,
    )


def _steps() -> list[_Step]:
    """Requested for every mailing purpose, then confirmed for each: signup then confirmation.

    Not the tracking purpose: noting opens and clicks is a choice of its own that a person
    makes, or not, and demo subscribers are people who signed up for mail.
    """
    latest: dict[int, ConsentText] = {}
    texts = ConsentText.objects.filter(purpose__offers_email=True, purpose__kind=Purpose.Kind.MAILING)
    texts = texts.order_by("purpose_id", "-version")
    for text in texts.select_related("purpose"):
        latest.setdefault(text.purpose_id, text)
    chosen = [latest[p] for p in Purpose.objects.filter(pk__in=latest).values_list("pk", flat=True)]
    requested_at = timezone.now().replace(microsecond=0)
    confirmed_at = requested_at + timedelta(seconds=1)
    steps = [_Step(i + 1, t, ConsentEvent.Kind.REQUESTED, requested_at) for i, t in enumerate(chosen)]
    steps += [
        _Step(len(chosen) + i + 1, t, ConsentEvent.Kind.CONFIRMED, confirmed_at) for i, t in enumerate(chosen)
    ]
    return steps


def _next_demo_number() -> int:
    # Zero-padded numbers sort as text, so MAX(email) is the highest demo number.
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(email) FROM subscribers_subscriber WHERE email LIKE %s", [EMAIL_PATTERN])
        (highest,) = cursor.fetchone()
    return int(highest[5:14]) + 1 if highest else 1


def _salt_quad(key: bytes, n: int, quad: int) -> str:
    """128 hex digits: the salts of events ``4 * quad - 3`` to ``4 * quad`` of demo number ``n``."""
    return hashlib.sha512(key + f"{n}:{quad}".encode()).hexdigest()


def _register_sqlite_functions(key: bytes) -> None:
    connection.ensure_connection()
    raw = connection.connection
    raw.create_function("sha256_hex", 1, lambda s: hashlib.sha256(s.encode()).hexdigest(), deterministic=True)
    raw.create_function("address_hash", 1, services.address_hash, deterministic=True)
    raw.create_function("demo_salts", 2, lambda n, j: _salt_quad(key, n, j), deterministic=True)


def _sha256(sql: str) -> str:
    if connection.vendor == "postgresql":
        return f"encode(sha256(convert_to({sql}, 'UTF8')), 'hex')"
    return f"sha256_hex({sql})"


def _address_hash(sql: str) -> tuple[str, list[Any]]:
    if connection.vendor != "postgresql":
        return f"address_hash({sql})", []
    # RFC 2104: HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), K padded to the block size.
    key = settings.ADDRESS_HASH_KEY.encode()
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    ipad, opad = bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)
    sql = f"encode(sha256(%s::bytea || sha256(%s::bytea || convert_to(lower({sql}), 'UTF8'))), 'hex')"
    return sql, [opad, ipad]


def _json_parts(content: dict[str, Any], *tokens: str) -> list[str]:
    """Canonical JSON as ``ledger._sha256`` hashes it, split at ``tokens`` (in text order)."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    parts = []
    for token in tokens:
        before, text = text.split(token, 1)
        parts.append(before)
    return [*parts, text]


def _reserve_ids(table: str, size: int) -> int:
    """First of ``size`` consecutive free ids; the caller's transaction holds the table lock."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [table])
            (first,) = cursor.fetchone()
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, first + size - 1])
        else:  # SQLite: BEGIN IMMEDIATE already holds the database's write lock.
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")
            (first,) = cursor.fetchone()
    return int(first)


def _seed_chunk(*, first: int, size: int, steps: list[_Step], key: bytes, sub_id: int, event_id: int) -> None:
    """Numbers ``first`` to ``first + size - 1``: subscriber ids from ``sub_id``, events from ``event_id``."""
    pg = connection.vendor == "postgresql"
    last = first + size - 1
    if pg and size > 1:
        # Two halves, UNION ALL: PostgreSQL hashes them in two processes at once (Parallel Append).
        middle = first + size // 2
        lower, lower_params = _wide_select(
            first, middle - 1, origin=first, sub_id=sub_id, key=key, steps=steps
        )
        upper, upper_params = _wide_select(middle, last, origin=first, sub_id=sub_id, key=key, steps=steps)
        select, params = f"{lower} UNION ALL {upper}", lower_params + upper_params
    else:
        select, params = _wide_select(first, last, origin=first, sub_id=sub_id, key=key, steps=steps)
    _fill_temp_tables(select=select, params=params, steps=steps, pg=pg)
    _insert_rows(steps=steps, event_base=event_id, sub_base=sub_id, pg=pg)


def _wide_select(
    first: int, last: int, *, origin: int, sub_id: int, key: bytes, steps: list[_Step]
) -> tuple[str, list[Any]]:
    """One row per number from ``first`` to ``last``: the subscriber and all its hashes."""
    pg = connection.vendor == "postgresql"
    n_steps = len(steps)
    # Innermost level: one row per number, with its salts four at a time (``_salt_quad``).
    quads = range(1, (n_steps + 3) // 4 + 1)
    number = "lpad(CAST(g.n AS TEXT), 9, '0')" if pg else "printf('%%09d', g.n)"
    if pg:
        quad = "encode(sha512(%s::bytea || convert_to(CAST(g.n AS TEXT) || ':{j}', 'UTF8')), 'hex')"
    else:
        quad = "demo_salts(g.n, {j})"
    names = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(NAMES))
    raw = ", ".join(f"{quad.format(j=j)} AS r{j}" for j in quads)

    def fence(level: int) -> str:
        # A volatile column keeps each level from being merged into the next, which would
        # compute a hash again wherever it is used; unlike OFFSET 0, it lets the halves of a
        # chunk run in parallel.
        return f", clock_timestamp() AS f{level}" if pg else ""

    sql = (
        f"SELECT g.n, %s + g.n - %s AS id, 'demo-' || {number} || '@example.net' AS email, "
        f"(CASE g.n %% {len(NAMES)} {names} END) || ' Demo ' || CAST(g.n AS TEXT) AS name, {raw} "
        + (f"{fence(0)} FROM generate_series(%s, %s) AS g(n)" if pg else "FROM g")
    )
    params: list[Any] = [sub_id, origin] + ([key] * len(quads) + [first, last] if pg else [])
    # Evidence digests (``ledger.evidence_digest``): the evidence is the same but for the salt.
    before, after = _json_parts(
        {"salt": "<salt>", "ip": None, "ua": "", "url": "", "submitted": SUBMITTED}, "<salt>"
    )
    salts = [f"substr(t.r{k // 4 + 1}, {1 + 32 * (k % 4)}, 32)" for k in range(n_steps)]
    digests = ", ".join(
        f"{salt} AS s{k}, {_sha256(f'%s || {salt} || %s')} AS e{k}" for k, salt in enumerate(salts, 1)
    )
    sql, params = f"SELECT t.*, {digests}{fence(1)} FROM ({sql}) t", [before, after] * n_steps + params
    # The chain: event k's hash covers event k-1's hash, so each link is one more level.
    for step in steps:
        k = step.seq
        a, b, c, d = _json_parts(_event_dict(step), "<evidence>", "<prev>", '"<subscriber>"')
        prev = f"t.h{k - 1}" if k > 1 else f"'{GENESIS}'"
        link = _sha256(f"%s || t.e{k} || %s || {prev} || %s || CAST(t.id AS TEXT) || %s")
        sql, params = f"SELECT t.*, {link} AS h{k}{fence(k + 1)} FROM ({sql}) t", [a, b, c, d, *params]
    email_hash, hash_params = _address_hash("t.email")
    columns = ", ".join(
        ["t.n", "t.id", "t.email", "t.name"] + [f"t.{c}{k}" for c in "seh" for k in range(1, n_steps + 1)]
    )
    sql, params = f"SELECT {columns}, {email_hash} AS email_hash FROM ({sql}) t", hash_params + params
    if not pg:
        sql = f"WITH RECURSIVE g(n) AS (SELECT %s UNION ALL SELECT n + 1 FROM g WHERE n < %s) {sql}"
        params = [first, last, *params]
    return sql, params


# Foreign keys of the seeded tables that the chunk satisfies itself: they point at rows it
# inserts, or at the purposes and consent texts ``_lock_texts`` locks as the checks would.
_SEEDED_KEYS = {
    "subscribers_subscriber": set(),
    "subscribers_consentevent": {
        "subscriber_id",
        "purpose_id",
        "consent_text_id",
        "request_id",
        "actor_user_id",
    },
    "subscribers_consentevidence": {"event_id"},
    "subscribers_consentstate": {"subscriber_id", "purpose_id", "consent_text_id", "last_event_id"},
}
_SEEDED_TABLES = list(_SEEDED_KEYS)
# synchronous_commit: demo data, no need to wait for its WAL to reach the disk; jit: compiling
# the big INSERTs costs more than it saves; the memory: build the indexes again in one pass.
_TUNING = {
    "synchronous_commit": "off",
    "jit": "off",
    "work_mem": "256MB",
    "maintenance_work_mem": "512MB",
    # Let the planner hash the two halves of a chunk in two processes, however small.
    "parallel_setup_cost": "0",
    "parallel_tuple_cost": "0",
}
# Filling an index row by row costs several times what sorting it in one pass does: seeding
# at least this fraction of the subscribers already there drops and rebuilds the indexes.
_REBUILD_FRACTION = 0.25


def _begin_postgresql(steps: list[_Step], *, count: int, outermost: bool) -> tuple[dict[str, str], list[str]]:
    """Lock, tune the transaction, skip the per-row FK checks and drop indexes where that pays.

    Returns the settings to put back at the end: none when the seeding is the whole
    transaction (``SET LOCAL`` ends with it, and ``synchronous_commit`` must last until
    COMMIT), all of them inside a caller's transaction, which must not inherit them; and the
    statements that recreate the dropped indexes.
    """
    wanted = dict(_TUNING)
    with connection.cursor() as cursor:
        skip_checks = _may_skip_foreign_key_checks(cursor)
        cursor.execute("SELECT COUNT(*) FROM subscribers_subscriber")
        # Only with the checks off: a row's FK check, deferred to COMMIT, would block the rebuild.
        rebuild = skip_checks and count >= _REBUILD_FRACTION * cursor.fetchone()[0]
        # Without the indexes nothing may read or write the tables until COMMIT; otherwise it
        # blocks concurrent inserts (not reads) so the reserved id ranges stay ours.
        mode = "ACCESS EXCLUSIVE" if rebuild else "SHARE ROW EXCLUSIVE"
        cursor.execute(f"LOCK TABLE {', '.join(_SEEDED_TABLES)} IN {mode} MODE")
        if skip_checks:
            _lock_texts(cursor, steps)
            wanted["session_replication_role"] = "replica"  # FK checks are triggers "on origin"
        restore = {}
        for name, value in wanted.items():
            cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
            restore[name] = cursor.fetchone()[0]
        rebuilt: list[str] = []
        if rebuild:
            try:
                with transaction.atomic():
                    rebuilt = _drop_indexes(cursor)
            except OperationalError:  # the caller's own rows still await their deferred checks
                rebuilt = []
    return ({} if outermost else restore), rebuilt


def _end_postgresql(rebuilt: list[str], restore: dict[str, str]) -> None:
    with connection.cursor() as cursor:
        # A unique index built again checks every row, old and new: a duplicate aborts it all.
        for statement in rebuilt:
            cursor.execute(statement)
        for name, value in restore.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def _drop_indexes(cursor: Any) -> list[str]:
    """Drop the seeded tables' indexes but the primary keys; return what creates them again.

    Read from the catalogue, so an index a later migration adds is rebuilt too. Kept: primary
    keys (foreign keys point at them; rows arrive in id order, so they only ever append) and
    any index a foreign key relies on.
    """
    cursor.execute(
        "SELECT CAST(CAST(i.indrelid AS regclass) AS text), CAST(CAST(i.indexrelid AS regclass) AS text), "
        "k.conname, "
        "COALESCE(pg_get_constraintdef(k.oid), pg_get_indexdef(i.indexrelid)) FROM pg_index i "
        "LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.contype IN ('u', 'x') "
        "WHERE i.indrelid = ANY(CAST(%s AS regclass[])) AND NOT i.indisprimary AND NOT EXISTS "
        "(SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = i.indexrelid) "
        "ORDER BY 1, 2",
        [_SEEDED_TABLES],
    )
    rebuilt = []
    for table, index, constraint, definition in cursor.fetchall():
        if constraint:
            name = connection.ops.quote_name(constraint)
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
            rebuilt.append(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
        else:
            cursor.execute(f"DROP INDEX {index}")
            rebuilt.append(definition)
    return rebuilt


def _may_skip_foreign_key_checks(cursor: Any) -> bool:
    """May this role switch triggers off, and would that switch off only checks we make moot?"""
    cursor.execute("SELECT CAST(current_setting('server_version_num') AS integer)")
    if cursor.fetchone()[0] >= 150000:  # GRANT SET ON PARAMETER exists since 15
        cursor.execute("SELECT has_parameter_privilege('session_replication_role', 'SET')")
    else:
        cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    if not cursor.fetchone()[0]:
        return False
    # Every trigger on INSERT that replica mode would silence ('O') or wake ('R') must be the
    # check of a foreign key in _SEEDED_KEYS; an audit trigger or a new key keeps them all on.
    cursor.execute(
        "SELECT c.relname, p.proname = 'RI_FKey_check_ins', ARRAY(SELECT CAST(a.attname AS text) "
        "FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey)) "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
        "LEFT JOIN pg_constraint k ON k.oid = t.tgconstraint WHERE c.relname = ANY(%s) "
        "AND pg_table_is_visible(c.oid) AND t.tgtype & 4 <> 0 AND t.tgenabled IN ('O', 'R')",
        [list(_SEEDED_KEYS)],
    )
    return all(is_fk and set(cols) <= _SEEDED_KEYS[table] for table, is_fk, cols in cursor.fetchall())


def _lock_texts(cursor: Any, steps: list[_Step]) -> None:
    """What the skipped checks would do for the rows the chunk does not insert itself."""
    for table, ids in (
        ("subscribers_purpose", {s.text.purpose_id for s in steps}),
        ("subscribers_consenttext", {s.text.pk for s in steps}),
    ):
        cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) FOR KEY SHARE", [sorted(ids)])
        if len(cursor.fetchall()) != len(ids):
            raise RuntimeError(f"seed_demo: a row of {table} was deleted while seeding")


def _event_dict(step: _Step) -> dict[str, Any]:
    """``ledger.event_hash``'s content for ``step``, with slots for the per-subscriber values."""
    return {
        "subscriber": "<subscriber>",
        "seq": step.seq,
        "purpose": step.text.purpose_id,
        "channel": str(Channel.EMAIL),
        "kind": str(step.kind),
        "text": step.text.pk,
        "text_digest": step.text.digest,
        "request": None,
        "at": step.occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "source": str(ConsentEvent.Source.IMPORT),
        "actor": str(ConsentEvent.Actor.SYSTEM),
        "actor_user": None,
        "actor_label": ACTOR_LABEL,
        "evidence": "<evidence>",
        "prev": "<prev>",
    }


def _fill_temp_tables(*, select: str, params: list[Any], steps: list[_Step], pg: bool) -> None:
    """``seed_wide``: one computed row per new subscriber; on SQLite ``seed_plan``: one row per step."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS seed_wide")
        # CREATE TABLE AS, unlike INSERT, may run its SELECT in parallel workers.
        cursor.execute(f"CREATE TEMP TABLE seed_wide AS {select}", params)
        if pg:
            return
        cursor.execute("DROP TABLE IF EXISTS seed_plan")
        cursor.execute(
            "CREATE TEMP TABLE seed_plan (seq INTEGER, purpose_id INTEGER, text_id INTEGER, kind TEXT, "
            "occurred_at TEXT)"
        )
        cursor.executemany(
            "INSERT INTO seed_plan VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    s.seq,
                    s.text.purpose_id,
                    s.text.pk,
                    s.kind,
                    connection.ops.adapt_datetimefield_value(s.occurred_at),
                )
                for s in steps
            ],
        )


def _insert_rows(*, steps: list[_Step], event_base: int, sub_base: int, pg: bool) -> None:
    """Copy the computed rows into the real tables, in id order: each event is (subscriber, step)."""
    m = len(steps)
    if pg:
        # LATERAL keeps a subscriber's events together, so the rows arrive in id order.
        def lateral(chosen: list[_Step]) -> tuple[str, list[Any]]:
            rows = ", ".join(
                f"(%s, %s, %s, %s, CAST(%s AS timestamptz), w.s{s.seq}, w.e{s.seq}, "
                f"{f'w.h{s.seq - 1}' if s.seq > 1 else repr(GENESIS)}, w.h{s.seq})"
                for s in chosen
            )
            columns = "seq, purpose_id, text_id, kind, occurred_at, s, e, prev, h"
            values = [v for s in chosen for v in (s.seq, s.text.purpose_id, s.text.pk, s.kind, s.occurred_at)]
            return f"seed_wide w CROSS JOIN LATERAL (VALUES {rows}) AS p({columns})", values

        source, params = lateral(steps)
        confirmed = lateral([s for s in steps if s.kind == ConsentEvent.Kind.CONFIRMED])
        pick = {c: f"p.{c}" for c in ("s", "e", "prev", "h")}
    else:  # SQLite has no LATERAL; CROSS JOIN keeps the order there.
        source, params = "seed_wide w CROSS JOIN seed_plan p", []
        confirmed = (source, params)

        def case(column: str, first: str | None = None) -> str:
            cases = " ".join(
                f"WHEN {k} THEN " + (first if k == 1 and first else f"w.{column}{k - 1 if first else k}")
                for k in range(1, m + 1)
            )
            return f"(CASE p.seq {cases} END)"

        pick = {"s": case("s"), "e": case("e"), "prev": case("h", repr(GENESIS)), "h": case("h")}

    event_id = f"{int(event_base)} + (w.id - {int(sub_base)}) * {m} + p.seq - 1"
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    requested_at = connection.ops.adapt_datetimefield_value(steps[0].occurred_at)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO subscribers_subscriber (id, email, email_hash, name, language, address_line1, "
            "address_line2, postal_code, city, country, created_at, ledger_seq, ledger_head) "
            f"SELECT id, email, email_hash, name, %s, '', '', '', '', '', %s, {m}, h{m} FROM seed_wide",
            [settings.LANGUAGE_CODE, now],
        )
        cursor.execute(
            "INSERT INTO subscribers_consentevent (id, subscriber_id, seq, purpose_id, channel, kind, "
            "consent_text_id, request_id, occurred_at, source, actor, actor_user_id, actor_label, "
            f"evidence_digest, prev_hash, hash) SELECT {event_id}, w.id, p.seq, p.purpose_id, %s, p.kind, "
            f"p.text_id, NULL, p.occurred_at, %s, %s, NULL, %s, {pick['e']}, {pick['prev']}, {pick['h']} "
            f"FROM {source}",
            [Channel.EMAIL, ConsentEvent.Source.IMPORT, ConsentEvent.Actor.SYSTEM, ACTOR_LABEL, *params],
        )
        submitted = "CAST(%s AS jsonb)" if pg else "%s"
        cursor.execute(
            "INSERT INTO subscribers_consentevidence (event_id, ip_address, user_agent, page_url, "
            f"submitted, salt, erased_at) SELECT {event_id}, NULL, '', '', {submitted}, {pick['s']}, NULL "
            f"FROM {source}",
            [json.dumps(SUBMITTED), *params],
        )
        cursor.execute(
            "INSERT INTO subscribers_consentstate (subscriber_id, purpose_id, channel, status, "
            "consent_text_id, requested_at, confirmed_at, withdrawn_at, last_event_id) "
            f"SELECT w.id, p.purpose_id, %s, %s, p.text_id, %s, p.occurred_at, NULL, {event_id} "
            f"FROM {confirmed[0]} WHERE p.kind = %s",
            [
                Channel.EMAIL,
                ConsentState.Status.ACTIVE,
                requested_at,
                *confirmed[1],
                ConsentEvent.Kind.CONFIRMED,
            ],
        )
        cursor.execute("DROP TABLE seed_wide")
        if not pg:
            cursor.execute("DROP TABLE seed_plan")

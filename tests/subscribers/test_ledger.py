"""The consent ledger: append-only at every layer, and tamper-evident."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from subscribers import ledger
from subscribers.ledger import Evidence
from subscribers.models import (
    ConsentEvent,
    ConsentEvidence,
    ImmutableRecordError,
)

pytestmark = pytest.mark.django_db

WEB = Evidence(source=ConsentEvent.Source.SIGNUP_PAGE, ip_address="203.0.113.7", user_agent="Firefox/130")


@pytest.fixture
def confirmed(confirmed_subscriber):
    return confirmed_subscriber


def test_orm_refuses_update_and_delete_of_an_event(confirmed):
    event = ConsentEvent.objects.filter(subscriber=confirmed).first()
    event.kind = ConsentEvent.Kind.WITHDRAWN
    with pytest.raises(ImmutableRecordError):
        event.save()
    with pytest.raises(ImmutableRecordError):
        event.delete()
    with pytest.raises(ImmutableRecordError):
        ConsentEvent.objects.filter(pk=event.pk).update(kind="withdrawn")
    with pytest.raises(ImmutableRecordError):
        ConsentEvent.objects.filter(pk=event.pk).delete()
    event.refresh_from_db()
    assert event.kind == ConsentEvent.Kind.REQUESTED


def test_database_refuses_raw_update(confirmed):
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE subscribers_consentevent SET kind = 'withdrawn'")
    assert not ConsentEvent.objects.filter(kind="withdrawn").exists()


def test_postgresql_refuses_raw_delete_of_events_texts_and_evidence(confirmed, consent_texts):
    if connection.vendor != "postgresql":
        pytest.skip("DELETE triggers are PostgreSQL's; SQLite test databases must stay flushable")
    statements = [
        "DELETE FROM subscribers_consentevent",
        "DELETE FROM subscribers_consenttext",
        "DELETE FROM subscribers_consentevidence",
        "UPDATE subscribers_consenttext SET statement = 'changed'",
    ]
    for sql in statements:
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute(sql)
    assert ConsentEvent.objects.filter(subscriber=confirmed).count() == 2
    assert ConsentEvidence.objects.count() == 2


def test_each_event_chains_to_the_previous_one(confirmed):
    first, second = ConsentEvent.objects.filter(subscriber=confirmed).order_by("seq")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == ledger.GENESIS
    assert second.prev_hash == first.hash
    confirmed.refresh_from_db()
    assert (confirmed.ledger_seq, confirmed.ledger_head) == (2, second.hash)
    assert list(ledger.verify()) == []


def _tamper(sql: str, params: list) -> None:
    """Change a row behind the application's back, as an attacker with SQL access would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred FK checks of this test's transaction would block ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE subscribers_consentevent DISABLE TRIGGER USER")
            cursor.execute(sql, params)
            cursor.execute("ALTER TABLE subscribers_consentevent ENABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER consent_event_append_only")
            cursor.execute(sql, params)


def test_verify_ledger_names_a_tampered_event(confirmed):
    call_command("verify_ledger")
    event = ConsentEvent.objects.get(subscriber=confirmed, seq=1)
    # Backdate the request by a year.
    _tamper(
        "UPDATE subscribers_consentevent SET occurred_at = %s WHERE id = %s",
        [event.occurred_at.replace(year=event.occurred_at.year - 1), event.pk],
    )
    with pytest.raises(CommandError, match="does not verify"):
        call_command("verify_ledger")
    problems = list(ledger.verify())
    assert problems[0].event_id == event.pk
    assert "does not match its hash" in problems[0].reason


def test_verify_ledger_finds_altered_evidence(confirmed):
    evidence = ConsentEvidence.objects.get(event__subscriber=confirmed, event__seq=2)
    ConsentEvidence.objects.filter(pk=evidence.pk).update(ip_address="198.51.100.1")
    problems = list(ledger.verify())
    assert [(p.event_id, "evidence" in p.reason) for p in problems] == [(evidence.pk, True)]


def test_verify_ledger_finds_a_removed_tail(confirmed):
    first, last = ConsentEvent.objects.filter(subscriber=confirmed).order_by("seq")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE subscribers_consentstate SET last_event_id = %s", [first.pk])
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # skips user triggers
        cursor.execute("DELETE FROM subscribers_consentevidence WHERE event_id = %s", [last.pk])
        cursor.execute("DELETE FROM subscribers_consentevent WHERE id = %s", [last.pk])
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")
    problems = list(ledger.verify())
    assert len(problems) == 1
    assert "removed" in problems[0].reason


def test_verify_ledger_finds_a_changed_consent_text(confirmed, consent_texts):
    text = consent_texts["newsletter"]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE subscribers_consenttext DISABLE TRIGGER USER")
            cursor.execute(
                "UPDATE subscribers_consenttext SET digest = %s WHERE id = %s", ["0" * 64, text.pk]
            )
            cursor.execute("ALTER TABLE subscribers_consenttext ENABLE TRIGGER USER")
        else:
            cursor.execute("DROP TRIGGER consent_text_immutable")
            cursor.execute(
                "UPDATE subscribers_consenttext SET digest = %s WHERE id = %s", ["0" * 64, text.pk]
            )
    assert len(list(ledger.verify())) == 2

"""The migrations describe the models exactly, and a later one cannot undo a column's collation."""

from __future__ import annotations

import copy

import pytest
from django.core.management import call_command
from django.db import connection

from subscribers.models import ConsentEvent

pytestmark = pytest.mark.django_db


def test_every_model_change_has_its_migration():
    # Exits non-zero (SystemExit) when a model differs from what the migrations build.
    call_command("makemigrations", check=True, dry_run=True, verbosity=0)


def _hash_collation() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
            "WHERE a.attrelid = 'subscribers_consentevent'::regclass AND a.attname = 'hash'"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL column collation")
def test_altering_the_event_hash_keeps_its_bytewise_collation():
    assert _hash_collation() == "C"
    old = ConsentEvent._meta.get_field("hash")
    wider = copy.copy(old)
    wider.max_length = 80  # what a future AlterField might do
    with connection.schema_editor(atomic=True) as editor:  # rolled back with the test
        editor.alter_field(ConsentEvent, old, wider)
    assert _hash_collation() == "C"

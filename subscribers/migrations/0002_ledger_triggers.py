"""Make the ledger and published consent texts append-only in the database itself.

PostgreSQL: row triggers refuse UPDATE and DELETE on consent events and consent texts,
and DELETE on evidence (an erasure blanks evidence; it never removes it). TRUNCATE is
left to the owner of the database, which is how test databases are reset.
SQLite (development): UPDATE is refused; DELETE stays possible so test databases can be
flushed; the ORM refuses both everywhere.
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION subscribers_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: this table is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'raise_exception';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_event_append_only BEFORE UPDATE OR DELETE ON subscribers_consentevent
    FOR EACH ROW EXECUTE FUNCTION subscribers_refuse_change();
CREATE TRIGGER consent_text_immutable BEFORE UPDATE OR DELETE ON subscribers_consenttext
    FOR EACH ROW EXECUTE FUNCTION subscribers_refuse_change();
CREATE TRIGGER consent_evidence_kept BEFORE DELETE ON subscribers_consentevidence
    FOR EACH ROW EXECUTE FUNCTION subscribers_refuse_change();
"""
PG_BACKWARD = """
DROP TRIGGER IF EXISTS consent_event_append_only ON subscribers_consentevent;
DROP TRIGGER IF EXISTS consent_text_immutable ON subscribers_consenttext;
DROP TRIGGER IF EXISTS consent_evidence_kept ON subscribers_consentevidence;
DROP FUNCTION IF EXISTS subscribers_refuse_change();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER IF NOT EXISTS consent_event_append_only BEFORE UPDATE ON subscribers_consentevent
       BEGIN SELECT RAISE(ABORT, 'UPDATE on subscribers_consentevent refused: this table is append-only'); END;""",
    """CREATE TRIGGER IF NOT EXISTS consent_text_immutable BEFORE UPDATE ON subscribers_consenttext
       BEGIN SELECT RAISE(ABORT, 'UPDATE on subscribers_consenttext refused: this table is append-only'); END;""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER IF EXISTS consent_event_append_only;",
    "DROP TRIGGER IF EXISTS consent_text_immutable;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD, params=None)  # '%' is plpgsql's, not a placeholder
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_BACKWARD, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]

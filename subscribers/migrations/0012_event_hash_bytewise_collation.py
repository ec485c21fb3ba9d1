"""Compare ledger hashes byte by byte on PostgreSQL.

They are lowercase hex: the database's linguistic collation orders them exactly as bytes do,
only several times slower, and the unique index on them is the largest one in the ledger
(building it was 13 of the 99 seconds ``seed_demo --subscribers 1000000`` took). SQLite
already compares bytes. The model state does not change: Django has no portable name for
"bytewise", and nothing compares these hashes in SQL but the unique index.
"""

from django.db import migrations

FORWARD = 'ALTER TABLE subscribers_consentevent ALTER COLUMN hash TYPE varchar(64) COLLATE "C"'
BACKWARD = 'ALTER TABLE subscribers_consentevent ALTER COLUMN hash TYPE varchar(64) COLLATE "default"'


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0011_email_tracking_purpose")]
    operations = [migrations.RunPython(forward, backward)]

"""ConsentEvent.hash declares its bytewise collation (``BytewiseCharField``).

0012 changed the column on PostgreSQL without telling the model state, so a later AlterField
on the field would have put the default collation back. The column is already right: only
the state changes.
"""

from django.db import migrations

import subscribers.models


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0012_event_hash_bytewise_collation")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="consentevent",
                    name="hash",
                    field=subscribers.models.BytewiseCharField(max_length=64),
                )
            ]
        )
    ]

"""The ``subscribers.erase_subscriber`` permission (erase a subscriber's personal data on
request, from the admin), granted to Compliance.

A plain row on the Subscriber content type rather than ``Subscriber.Meta.permissions``, so
the model's state is unchanged. Django never deletes permissions it did not create, so
the row stays; ``forward`` is idempotent and the test fixtures re-run it after flushes.
"""

from django.db import migrations

CODENAME = "erase_subscriber"
NAME = "Can erase a subscriber's personal data"


def forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label="subscribers", model="subscriber")
    permission, _ = Permission.objects.get_or_create(
        content_type=content_type, codename=CODENAME, defaults={"name": NAME}
    )
    group, _ = Group.objects.get_or_create(name="Compliance")
    group.permissions.add(permission)


def backward(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(content_type__app_label="subscribers", codename=CODENAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0006_suppression_lift"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forward, backward)]

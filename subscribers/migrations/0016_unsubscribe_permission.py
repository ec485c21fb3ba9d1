"""The ``subscribers.unsubscribe_on_request`` permission (withdraw every consent of a
subscriber, from the admin, when they ask by email, letter or phone), granted to Compliance.

Like ``erase_subscriber`` (0007): a plain row on the Subscriber content type rather than
``Subscriber.Meta.permissions``, so the model's state is unchanged; ``forward`` is
idempotent and the test fixtures re-run it after flushes.
"""

from django.db import migrations

CODENAME = "unsubscribe_on_request"
NAME = "Can unsubscribe a subscriber from everything at their request"


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
        ("subscribers", "0015_confirmation_unsent_index"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forward, backward)]

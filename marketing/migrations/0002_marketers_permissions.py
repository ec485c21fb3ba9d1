"""Give the staff groups their campaign permissions.

Marketers compose and send campaigns (add, change and view campaigns and layouts) and
see deliveries and the audit trail; Compliance sees all four, read-only.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MARKETERS = [
    "add_campaign",
    "change_campaign",
    "view_campaign",
    "add_layout",
    "change_layout",
    "view_layout",
    "view_delivery",
    "view_campaignaction",
]
COMPLIANCE = ["view_campaign", "view_layout", "view_delivery", "view_campaignaction"]


def forward(apps, schema_editor):
    # Permissions are normally created after migrate; the groups need them now.
    for app_config in apps.get_app_configs():
        saved = getattr(app_config, "models_module", None)
        app_config.models_module = saved or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = saved
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in (("Marketers", MARKETERS), ("Compliance", COMPLIANCE)):
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="marketing", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0001_initial"),
        ("subscribers", "0004_suppression_subscriber_email_hash"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]

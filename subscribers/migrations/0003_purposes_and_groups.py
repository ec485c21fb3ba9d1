"""Seed the three purposes and create the Marketers and Compliance groups.

Consent texts are not seeded here: the wording is the organisation's own and is
published by staff (or by ``seed_demo`` for a demo).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PURPOSES = [
    ("newsletter", "Newsletter", "Our regular newsletter: news, articles and tips.", True, True, 10),
    ("promotions", "Promotions", "Offers, discounts and sales.", True, True, 20),
    (
        "product-information",
        "Product information",
        "News about products you may be interested in.",
        True,
        True,
        30,
    ),
]

MARKETERS = [
    "view_subscriber",
    "view_consentstate",
    "view_consentevent",
    "view_purpose",
    "view_consenttext",
]
COMPLIANCE = [
    "view_subscriber",
    "view_consentstate",
    "view_consentevent",
    "view_consentevidence",
    "view_purpose",
    "add_purpose",
    "change_purpose",
    "view_consenttext",
    "add_consenttext",
    "change_consenttext",
    "view_consent_proof",
    "view_consent_evidence",
    "view_confirmationrequest",
]


def forward(apps, schema_editor):
    Purpose = apps.get_model("subscribers", "Purpose")
    for slug, name, description, email, postal, position in PURPOSES:
        Purpose.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "offers_email": email,
                "offers_postal": postal,
                "position": position,
            },
        )
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
            *Permission.objects.filter(content_type__app_label="subscribers", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("subscribers", "0002_ledger_triggers"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]

"""Seed the one tracking purpose: "Help us improve our emails" (opens and clicks, by email).

Like the other purposes, its consent text is the organisation's own wording, published by
staff (or by ``seed_demo`` for a demo); until one is published it is not offered.
``forward`` is idempotent and the test fixtures re-run it after flushes.
"""

from django.db import migrations

SLUG = "email-tracking"


def forward(apps, schema_editor):
    Purpose = apps.get_model("subscribers", "Purpose")
    if Purpose.objects.filter(kind="tracking").exists():
        return
    Purpose.objects.get_or_create(
        slug=SLUG,
        defaults={
            "name": "Help us improve our emails",
            "description": "Optional: we note whether you open the emails you get from us and which "
            "links you click in them, to learn what is worth sending. This sends you nothing.",
            "offers_email": True,
            "offers_postal": False,
            "kind": "tracking",
            # After every kind of mail on the signup page and in the preference centre.
            "position": 1000,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("subscribers", "0010_purpose_kind")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]

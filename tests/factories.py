"""factory_boy factories. Consent texts go through the publishing service, as in production."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from subscribers import services
from subscribers.models import ConsentText, Purpose, Subscriber


class PurposeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purpose
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"purpose-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())
    description = "Something worth reading."
    offers_email = True
    offers_postal = True


def publish_text(purpose: Purpose, *, language: str = "en", **overrides: str) -> ConsentText:
    content = {
        "statement": f"Yes, send me the {purpose.name.lower()}",
        "data_collected": "Your email address and, if you give it, your name.",
        "use": f"To send you the {purpose.name.lower()}. Nothing else.",
        "frequency": "About once a month.",
        "retention": "Until you unsubscribe, then 30 days.",
        "controller": "Example Ltd, 1 Example Street, Example City.",
        "withdrawal": "Click unsubscribe in any email, at any time.",
        **overrides,
    }
    return services.consent_text_publish(purpose=purpose, language=language, content=content)


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    name = factory.Faker("first_name")


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


def staff_in(group_name: str | None = None, **kwargs: Any) -> Any:
    """A staff user, in the named group (Marketers, Compliance) if one is given."""
    user: Any = StaffFactory(**kwargs)
    if group_name:
        user.groups.add(Group.objects.get(name=group_name))
    return user

"""Demo data for ``make run``: staff logins, consent texts and a few subscribers. Idempotent.

``--subscribers N`` then ADDS N bulk demo subscribers with confirmed consent to every kind of
mail, not to tracking (numbered after the highest existing one, so running it again adds N
more), in one transaction; see ``subscribers.bulk``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscribers import bulk, services
from subscribers.ledger import Evidence
from subscribers.models import Channel, ConsentEvent, ConsentText, Purpose, Subscriber

TEXTS = {
    "newsletter": {
        "statement": "Yes, send me the newsletter",
        "use": "To send you our newsletter with news, articles and tips. We don't sell or share your "
        "address, and we don't use it for anything else.",
        "frequency": "Once a month.",
    },
    "promotions": {
        "statement": "Yes, tell me about offers and sales",
        "use": "To tell you about discounts, offers and sales. We don't sell or share your details.",
        "frequency": "At most twice a month.",
    },
    "product-information": {
        "statement": "Yes, send me news about products",
        "use": "To tell you about new products and changes to the ones you use. We don't sell or "
        "share your details.",
        "frequency": "A few times a year.",
    },
    # Not a mailing: what is noted about the emails the person gets, so every part is its own.
    "email-tracking": {
        "statement": "Yes, you may note when I open your emails and which links I click",
        "data_collected": "For each email we send you: whether and when you first opened it (an "
        "invisible image in the email is fetched from our site) and which of its links you "
        "clicked, and when. We keep no IP address, no browser or device details and no location.",
        "use": "To learn which emails and topics are worth sending, and to send fewer that nobody "
        "reads. Counted per email and link; we don't build a profile of you or share it with anyone. "
        "Without this, your emails carry no tracking image and their links go straight to the page.",
        "frequency": "Only when you open one of our emails or click a link in it.",
        "retention": "With our record of the emails we sent you, for our reports. Switching this off "
        "stops any further noting at once. If you ask us to delete your data, your address and name "
        "go, and what was noted can no longer be linked to you.",
        "withdrawal": 'Switch it off in "Choose what you receive" (the link at the bottom of every '
        "email), at any time. It takes effect at once; the emails you get stay the same.",
    },
}
DEMO_PEOPLE = [("ada@example.org", "Ada"), ("grace@example.org", "Grace"), ("alan@example.org", "Alan")]


class Command(BaseCommand):
    help = "Create demo staff users, consent texts and subscribers (safe to run again)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Run even with DEBUG off.")
        parser.add_argument(
            "--subscribers",
            type=int,
            default=0,
            metavar="N",
            help="Also ADD N demo subscribers with confirmed consent, in set-based SQL.",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=100_000,
            help="Subscribers computed per statement (with --subscribers); all go in one transaction.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError("seed_demo creates known logins: it runs only with DEBUG=1 (or --force).")
        password = self._password()
        self._staff(password)
        self._texts()
        self._subscribers()
        if options["subscribers"] < 0 or options["chunk_size"] < 1:
            raise CommandError("--subscribers must be 0 or more and --chunk-size at least 1.")
        if options["subscribers"]:
            result = bulk.seed_subscribers(count=options["subscribers"], chunk_size=options["chunk_size"])
            self.stdout.write(
                f"Added {result.subscribers} subscribers, {result.events} consent events, "
                f"{result.evidence} evidence rows and {result.states} consent states "
                f"in {result.seconds:.1f} s."
            )
        self.stdout.write(
            self.style.SUCCESS("Demo data ready. Staff logins (password for all three): ")
            + f"admin / marketer / compliance : {password}"
        )

    def _password(self) -> str:
        path = Path(settings.VAR_DIR) / "demo-credentials.json"
        if path.exists():
            return str(json.loads(path.read_text())["password"])
        password = secrets.token_urlsafe(12)
        path.write_text(json.dumps({"password": password}))
        path.chmod(0o600)
        return password

    def _staff(self, password: str) -> None:
        user_model = get_user_model()
        for username, group in (("admin", None), ("marketer", "Marketers"), ("compliance", "Compliance")):
            user, created = user_model.objects.get_or_create(
                username=username,
                defaults={
                    "is_staff": True,
                    "is_superuser": group is None,
                    "email": f"{username}@example.com",
                },
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if group:
                user.groups.add(Group.objects.get(name=group))

    def _texts(self) -> None:
        for purpose in Purpose.objects.all():
            if ConsentText.objects.filter(purpose=purpose).exists():
                continue
            words = TEXTS.get(
                purpose.slug,
                {
                    "statement": f"Yes, send me {purpose.name.lower()}",
                    "use": f"To send you {purpose.name.lower()}.",
                    "frequency": "Now and then.",
                },
            )
            services.consent_text_publish(
                purpose=purpose,
                language=settings.LANGUAGE_CODE,
                content={
                    "data_collected": "Your email address, and your name if you give it. For mail by "
                    "post, your postal address.",
                    "retention": "As long as you stay subscribed. When you unsubscribe we delete your "
                    "details within 30 days, keeping only the record of your consent and its withdrawal, "
                    "which the law asks us to be able to show.",
                    "controller": f"{settings.ORGANISATION_NAME}, {settings.ORGANISATION_ADDRESS}.",
                    "withdrawal": "Use the unsubscribe link at the bottom of every email, at any time. "
                    "It takes one click and works at once.",
                    **words,
                },
            )

    def _subscribers(self) -> None:
        offers = list(ConsentText.objects.order_by("purpose_id", "-version").distinct())
        latest: dict[int, ConsentText] = {}
        for text in offers:
            latest.setdefault(text.purpose_id, text)
        for email, name in DEMO_PEOPLE:
            if Subscriber.objects.filter(email__iexact=email).exists():
                continue
            evidence = Evidence(
                source=ConsentEvent.Source.IMPORT,
                actor=ConsentEvent.Actor.SYSTEM,
                actor_label="seed_demo",
                submitted={"demo": True},
            )
            outcome = services.subscriber_sign_up(
                email=email,
                name=name,
                choices=[
                    services.ConsentChoice(consent_text=t, channel=Channel.EMAIL) for t in latest.values()
                ],
                evidence=evidence,
            )
            if outcome.request:
                services.subscription_confirm(request_id=outcome.request.pk, evidence=evidence)

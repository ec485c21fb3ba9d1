"""Walk every consent-ledger chain and report the first event that does not match."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subscribers import ledger
from subscribers.models import ConsentEvent


class Command(BaseCommand):
    help = "Verify the hash chains of the consent ledger; exits non-zero at the first mismatch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="List every problem, not only the first.")
        parser.add_argument("--subscriber", type=int, action="append", help="Only this subscriber's chain.")

    def handle(self, *args: Any, **options: Any) -> None:
        problems = ledger.verify(subscriber_ids=options["subscriber"])
        found = []
        for problem in problems:
            found.append(problem)
            self.stderr.write(f"Tampering or loss: {problem}")
            if not options["all"]:
                break
        if found:
            raise CommandError(f"The consent ledger does not verify ({len(found)} problem(s) shown).")
        count = ConsentEvent.objects.count()
        self.stdout.write(self.style.SUCCESS(f"Ledger verified: {count} events, every chain intact."))

"""Everything a marketer does with a campaign, from the command line.

    manage.py campaign list
    manage.py campaign preview ID [--text]
    manage.py campaign test ID EMAIL --user USERNAME
    manage.py campaign send ID [--at ISO-8601] --user USERNAME
    manage.py campaign status ID
    manage.py campaign pause ID [--reason TEXT] --user USERNAME
    manage.py campaign resume ID --user USERNAME
    manage.py campaign cancel ID --user USERNAME

Each calls the same services as the admin, so each is audited as ``--user``. The
actions that change a campaign or send mail require it: without it the audit trail
would name "system", as if the scheduler had acted. A refused action or an unknown id
exits non-zero with the reason.
"""

from __future__ import annotations

import smtplib
from argparse import ArgumentParser
from typing import Any

from anymail.exceptions import AnymailError
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from marketing import rendering, services
from marketing.models import Campaign
from marketing.samples import campaign_progress, html_part, sample_message, sample_recipient, send_test
from subscribers.selectors import audience_breakdown

# What each action that needs a person does, for the error when --user is missing.
ACTS = {
    "test": "sends mail",
    "send": "starts or schedules sending",
    "pause": "pauses the campaign",
    "resume": "resumes sending",
    "cancel": "cancels the campaign",
}


class Command(BaseCommand):
    help = "List, preview, test, send, schedule, pause, resume or cancel campaigns."

    def add_arguments(self, parser: ArgumentParser) -> None:
        commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

        def command(name: str, help_text: str, *, with_id: bool = True) -> ArgumentParser:
            sub = commands.add_parser(name, help=help_text, description=help_text)
            if with_id:
                sub.add_argument("campaign_id", type=int, metavar="ID")
            sub.add_argument(
                "--user",
                metavar="USERNAME",
                help="Record the action as this staff user" + (" (required)." if name in ACTS else "."),
            )
            return sub

        command("list", "List campaigns, newest first.", with_id=False)
        preview = command("preview", "Print the campaign's HTML (or --text) for a sample recipient.")
        preview.add_argument("--text", action="store_true", help="Print the plain-text part instead.")
        test = command("test", "Send the campaign to one address as a test (sample links).")
        test.add_argument("email")
        send = command("send", "Start sending now, or schedule it with --at.")
        send.add_argument(
            "--at", metavar="ISO-8601", help="e.g. 2030-01-31T09:00 (local time) or with an offset."
        )
        command("status", "Show status, counts and, before sending, the audience breakdown.")
        pause = command("pause", "Pause a sending campaign.")
        pause.add_argument("--reason", default="", help="Why, for the audit trail and the campaign page.")
        command("resume", "Resume a paused campaign.")
        command("cancel", "Cancel a campaign; messages not yet sent are never sent.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["command"]
        # Checked here rather than by argparse (required=True), so the error can say why.
        if name in ACTS and not options.get("user"):
            raise CommandError(
                f"`campaign {name}` {ACTS[name]}: give --user USERNAME, the staff user the audit "
                'trail names (without it the action would be recorded as "system").'
            )
        actor = self._actor(options.get("user"))
        if name in ACTS and not _may_act(actor):
            raise CommandError(
                f"{actor.get_username()!r} may not {name} campaigns: the admin's buttons need an active "
                "staff user with the permission to change campaigns (the Marketers group), and so does this."
            )
        if name == "list":
            self._list()
            return
        campaign = self._campaign(options["campaign_id"])
        try:
            if name in ("send", "test"):
                services.campaign_purpose_check(purpose=campaign.purpose)
            getattr(self, f"_{name}")(campaign, actor, options)
        except services.CampaignStateError as exc:
            raise CommandError(
                f"Campaign {campaign.pk} ({campaign.get_status_display().lower()}): {exc}"
            ) from exc

    # --- Lookups -----------------------------------------------------------------------

    def _actor(self, username: str | None) -> Any:
        if not username:
            return None
        try:
            return get_user_model().objects.get_by_natural_key(username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None

    def _campaign(self, campaign_id: int) -> Campaign:
        try:
            return Campaign.objects.select_related("purpose", "layout").get(pk=campaign_id)
        except Campaign.DoesNotExist:
            raise CommandError(f"No campaign with id {campaign_id}; `campaign list` shows them.") from None

    # --- Commands ----------------------------------------------------------------------

    def _list(self) -> None:
        campaigns = Campaign.objects.select_related("purpose").order_by("-created_at", "-id")
        self.stdout.write(f"{'ID':>5}  {'STATUS':<10} {'SENT/RECIPIENTS':>16}  {'PURPOSE':<20} NAME")
        for c in campaigns.iterator():
            progress = f"{c.sent_count}/{c.recipients_count}"
            self.stdout.write(f"{c.pk:>5}  {c.status:<10} {progress:>16}  {c.purpose.name[:20]:<20} {c.name}")

    def _preview(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        message = sample_message(rendering.prepare(campaign), sample_recipient())
        if options["text"]:
            self.stdout.write(f"Subject: {message.subject}\n\n{message.body}")
        else:
            self.stdout.write(html_part(message))

    def _test(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        to = options["email"]
        try:
            send_test(campaign=campaign, to=to, actor=actor)
        except (AnymailError, smtplib.SMTPException, OSError) as exc:
            raise CommandError(f"The test could not be sent: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Test of campaign {campaign.pk} sent to {to}."))

    def _send(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        if options.get("at"):
            at = parse_datetime(options["at"])
            if at is None:
                raise CommandError(f"--at {options['at']!r} is not an ISO 8601 date and time.")
            if timezone.is_naive(at):
                at = timezone.make_aware(at)
            if at <= timezone.now():
                raise CommandError("--at is in the past: give a later time, or leave it out to send now.")
            services.campaign_schedule(campaign_id=campaign.pk, actor=actor, at=at)
            self.stdout.write(self.style.SUCCESS(f"Campaign {campaign.pk} scheduled for {at.isoformat()}."))
            return
        started = services.campaign_send(campaign_id=campaign.pk, actor=actor)
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign {campaign.pk} is sending to {started.recipients_count} eligible recipients."
            )
        )

    def _status(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        progress = campaign_progress(campaign)
        lines = [
            f"Campaign {campaign.pk}: {campaign.name}",
            f"Purpose:    {campaign.purpose.name}",
            f"Status:     {progress['status_display']}"
            + (f" ({campaign.paused_reason})" if campaign.paused_reason else ""),
        ]
        if campaign.scheduled_at:
            lines.append(f"Scheduled:  {campaign.scheduled_at.isoformat()}")
        if campaign.started_at:
            lines.append(f"Started:    {campaign.started_at.isoformat()}")
        if campaign.finished_at:
            lines.append(f"Finished:   {campaign.finished_at.isoformat()}")
        lines += [
            f"Recipients: {progress['recipients']}",
            f"Queued:     {progress['queued']}",
            f"Sent:       {progress['sent']}",
            f"Failed:     {progress['failed']}",
            f"Skipped:    {progress['skipped']} (consent withdrawn or suppressed in flight)",
        ]
        if campaign.is_editable:
            breakdown = audience_breakdown(purpose_id=campaign.purpose_id)
            lines += [
                "Audience now:",
                f"  eligible:     {breakdown['eligible']}",
                f"  no consent:   {breakdown['no_consent']}",
                f"  suppressed:   {breakdown['suppressed']}",
                f"  unconfirmed:  {breakdown['unconfirmed']}",
                f"  paused:       {breakdown['paused']}",
                f"  frequency:    {breakdown['frequency']} (held back by their chosen frequency)",
            ]
        self.stdout.write("\n".join(lines))

    def _pause(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        services.campaign_pause(campaign_id=campaign.pk, actor=actor, reason=options.get("reason") or "")
        self.stdout.write(self.style.SUCCESS(f"Campaign {campaign.pk} paused."))

    def _resume(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        services.campaign_resume(campaign_id=campaign.pk, actor=actor)
        self.stdout.write(self.style.SUCCESS(f"Campaign {campaign.pk} resumed."))

    def _cancel(self, campaign: Campaign, actor: Any, options: dict[str, Any]) -> None:
        cancelled = services.campaign_cancel(campaign_id=campaign.pk, actor=actor)
        self.stdout.write(
            self.style.SUCCESS(
                f"Campaign {campaign.pk} cancelled; "
                f"{cancelled.queued_count} queued messages will not be sent."
            )
        )


def _may_act(user: Any) -> bool:
    """What the campaign page asks of whoever presses its buttons."""
    return bool(user.is_active and user.is_staff and user.has_perm("marketing.change_campaign"))

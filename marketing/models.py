"""Campaigns, the layouts they are written in, one delivery record per recipient, and the
events providers report about those deliveries.

A campaign's audience is snapshotted into ``Delivery`` rows (unique per campaign and
subscriber) when sending starts; workers claim them in batches. Counters on the campaign
are updated in the same transaction as the deliveries they count, so the campaign page
reads four integers instead of counting millions of rows.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from subscribers.models import Purpose, Subscriber


class Layout(models.Model):
    """The brand frame around every campaign body: header, footer and CSS (inlined at send)."""

    name = models.CharField(max_length=100, unique=True)
    header_html = models.TextField(
        blank=True, help_text=_("HTML above the body, e.g. a logo and the brand name.")
    )
    footer_html = models.TextField(
        blank=True, help_text=_("Extra HTML above the legal footer (which is always added).")
    )
    css = models.TextField(blank=True, help_text=_("Inlined into every element when the email is built."))

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The legal footer (why you get this, who we are, the unsubscribe link) is the law's,
        # not the brand's: a layout may not restyle it, hidden or otherwise.
        if "email-legal" in self.css:
            raise ValidationError(
                {"css": _("The legal footer (.email-legal) keeps its own style: remove the rules for it.")}
            )


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SCHEDULED = "scheduled", _("Scheduled")
        SENDING = "sending", _("Sending")
        PAUSED = "paused", _("Paused")
        SENT = "sent", _("Sent")
        CANCELLED = "cancelled", _("Cancelled")

    class BodyFormat(models.TextChoices):
        MARKDOWN = "markdown", _("Markdown")
        HTML = "html", _("HTML")

    name = models.CharField(max_length=200, help_text=_("For staff only; recipients never see it."))
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="campaigns")
    layout = models.ForeignKey(Layout, on_delete=models.PROTECT, null=True, blank=True)
    subject = models.CharField(max_length=200)
    preheader = models.CharField(
        max_length=200, blank=True, help_text=_("The preview line after the subject.")
    )
    body_format = models.CharField(max_length=10, choices=BodyFormat.choices, default=BodyFormat.MARKDOWN)
    body = models.TextField(
        help_text=_("Use {{ first_name }} for the recipient's first name (with the fallback below).")
    )
    first_name_fallback = models.CharField(max_length=50, default="there", blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Maintained by dispatch in the transactions that change deliveries.
    recipients_count = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    # Maintained by provider-event processing: deliveries that bounced or drew a complaint,
    # each counted once; the guardrails compare them with sent_count.
    bounced_count = models.PositiveIntegerField(default=0)
    complained_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["scheduled_at"], name="campaign_due_idx", condition=models.Q(status="scheduled")
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.status in (self.Status.DRAFT, self.Status.SCHEDULED)

    @property
    def queued_count(self) -> int:
        return max(self.recipients_count - self.sent_count - self.failed_count - self.skipped_count, 0)


class Delivery(models.Model):
    """One recipient of one campaign: the unit that is claimed, sent and recorded once."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        CLAIMED = "claimed", _("Being sent")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped: no longer eligible")

    # No index of its own: the unique (campaign, subscriber) serves lookups by campaign, and
    # every index is paid for on each of a million snapshot inserts.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    # No database constraint: checking it locked each of a million subscriber rows (FOR KEY
    # SHARE) at the snapshot's COMMIT, writing to every subscriber page, 10 of the 22 s of a
    # 1M snapshot. Nothing is lost: deliveries are only made by the snapshot, from a join on
    # the subscribers in the same statement, and a subscriber row is never deleted (the
    # ledger's own constraint protects it; erasure blanks it in place). PROTECT still
    # guards deletes through the ORM.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.PROTECT, related_name="deliveries", db_constraint=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    retry_after = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    error = models.CharField(max_length=500, blank=True)
    # This message carried an open pixel and tracked links because the subscriber agreed to
    # it (the tracking purpose) when it was sent; opens and clicks are noted only then.
    # db_default: the audience snapshot's INSERT … SELECT names only the columns it fills.
    tracked = models.BooleanField(default=False, db_default=False)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "subscriber"], name="delivery_once_per_recipient"),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "id"], name="delivery_claim_idx"),
            # Provider events find their delivery by message id; queued rows have none yet.
            models.Index(
                fields=["provider_message_id"],
                name="delivery_provider_id_idx",
                condition=~models.Q(provider_message_id=""),
            ),
        ]
        permissions = [("export_recipients", "Can download a campaign's recipients with their outcome")]

    def __str__(self) -> str:
        return f"{self.campaign_id}/{self.subscriber_id}: {self.status}"


class CampaignAction(models.Model):
    """Who did what to a campaign, and when: the staff audit trail."""

    class Action(models.TextChoices):
        CREATE = "create", _("Created")
        EDIT = "edit", _("Edited")
        TEST = "test", _("Sent a test")
        SCHEDULE = "schedule", _("Scheduled")
        SEND = "send", _("Started sending")
        PAUSE = "pause", _("Paused")
        RESUME = "resume", _("Resumed")
        CANCEL = "cancel", _("Cancelled")
        FINISH = "finish", _("Finished")
        EXPORT = "export", _("Downloaded a report table")

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="actions")
    action = models.CharField(max_length=10, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150, help_text=_("Username at the time, or 'system'."))
    at = models.DateTimeField(default=timezone.now)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.campaign_id}"


class DeliveryEvent(models.Model):
    """One event a provider reported about a message (delivered, bounced, complained …).

    Stored once (``dedupe_key``) as it arrives, then matched to its delivery and acted on by
    ``marketing.process_delivery_event``. An event for a message we cannot find is kept
    with no delivery, for staff to inspect. Personal data is limited to what matching and
    reporting need: the recipient as the keyed hash ``Subscriber.email_hash`` uses, and its
    domain; addresses in the provider's text are masked; no IP, user agent or click URL.
    """

    class Type(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        REJECTED = "rejected", _("Rejected by the provider")
        FAILED = "failed", _("Failed at the provider")
        BOUNCED = "bounced", _("Bounced")
        DEFERRED = "deferred", _("Deferred")
        DELIVERED = "delivered", _("Delivered")
        AUTORESPONDED = "autoresponded", _("Auto-reply")
        OPENED = "opened", _("Opened")
        CLICKED = "clicked", _("Clicked")
        COMPLAINED = "complained", _("Spam complaint")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed at the provider")
        SUBSCRIBED = "subscribed", _("Resubscribed at the provider")
        UNKNOWN = "unknown", _("Other")

    class Bounce(models.TextChoices):
        NONE = "", _("-")
        HARD = "hard", _("Hard")
        SOFT = "soft", _("Soft")

    delivery = models.ForeignKey(
        Delivery, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    # The delivery's campaign, so counts per campaign and type read one index.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    esp_name = models.CharField(_("provider"), max_length=50)
    event_type = models.CharField(max_length=20, choices=Type.choices)
    reject_reason = models.CharField(max_length=20, blank=True)
    bounce = models.CharField(max_length=4, choices=Bounce.choices, blank=True)
    event_id = models.CharField(_("provider event id"), max_length=255, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    recipient_hash = models.CharField(max_length=64, blank=True)
    recipient_domain = models.CharField(max_length=255, blank=True)
    # Only the ids we put in the message: delivery_id, campaign_id.
    metadata = models.JSONField(default=dict, blank=True)
    description = models.CharField(max_length=300, blank=True)
    mta_response = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    dedupe_key = models.CharField(max_length=64, unique=True, editable=False)
    matched = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["campaign", "event_type"], name="delivery_event_campaign_idx"),
            # The sweep that re-queues events whose processing task was lost.
            models.Index(
                fields=["received_at"],
                name="delivery_event_pending_idx",
                condition=models.Q(processed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.esp_name} {self.event_type} #{self.pk}"


class CampaignStat(models.Model):
    """How many of a campaign's deliveries reached a stage in one hour: the report's counters.

    Delivered, bounced, complained, opened and clicked are added as provider events are
    processed (``marketing.reports.counters``), each delivery once per stage; sent, tracked
    and unsubscribed are rebuilt by the reports rollup task (``marketing.reports.rollup``).
    A campaign's report sums a few hundred of these rows instead of counting its deliveries
    or events.
    """

    class Metric(models.TextChoices):
        SENT = "sent", _("Sent")
        TRACKED = "tracked", _("Sent with tracking")
        DELIVERED = "delivered", _("Delivered")
        BOUNCED = "bounced", _("Bounced")
        COMPLAINED = "complained", _("Complained")
        OPENED = "opened", _("Opened")
        CLICKED = "clicked", _("Clicked")
        UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="stats", db_index=False)
    metric = models.CharField(max_length=12, choices=Metric.choices)
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "metric", "hour"], name="campaign_stat_once_per_hour")
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} {self.metric} {self.hour:%Y-%m-%d %H}h: {self.count}"


class ListHealthDay(models.Model):
    """One day of the list-health dashboard, per purpose and channel, or (no purpose) list-wide.

    Rebuilt by the reports rollup task from the consent ledger, the current consents and
    the suppressions, so the dashboard reads a few hundred rows however long the list is.
    ``active`` is the count of active consents at the end of the day (list-wide: subscribers
    with at least one); today's is the count when the rollup last ran.
    """

    day = models.DateField()
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, null=True, blank=True, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=10, blank=True)
    active = models.PositiveIntegerField(null=True, blank=True)
    requested = models.PositiveIntegerField(default=0)
    confirmed = models.PositiveIntegerField(default=0)
    withdrawn = models.PositiveIntegerField(default=0)
    new_subscribers = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    refreshed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "purpose", "channel"],
                condition=models.Q(purpose__isnull=False),
                name="list_health_day_per_purpose",
            ),
            models.UniqueConstraint(
                fields=["day"], condition=models.Q(purpose__isnull=True), name="list_health_day_list_wide"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.purpose_id or 'all'}/{self.channel}"

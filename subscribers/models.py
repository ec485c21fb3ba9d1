"""Subscribers, purposes, versioned consent texts and the consent ledger.

The ledger (``ConsentEvent``) is append-only: the ORM refuses to update or delete an
event, and on PostgreSQL a trigger refuses it too. ``ConsentState`` is the current state
derived from the ledger, written in the same transaction as each event (see
``subscribers.ledger``), so "may we email this person for this purpose?" is one indexed
lookup. Personal data that an erasure must remove (IP address, user agent, what was
typed) lives in ``ConsentEvidence``, outside the hashed event, which keeps only its digest.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NoReturn

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    POSTAL = "postal", _("Postal mail")


class Purpose(models.Model):
    """Something a person may agree to: a kind of mail, or (``Kind.TRACKING``) having opens
    and clicks of the mail they get noted.

    A tracking purpose is never a reason to send anything: no campaign can target it and
    the sending selector is never asked about it. It only decides whether the messages a
    person gets for the mailing purposes carry an open pixel and tracked links.
    """

    class Kind(models.TextChoices):
        MAILING = "mailing", _("Mailing: mail we send")
        TRACKING = "tracking", _("Tracking: noting opens and clicks of our emails")

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(
        max_length=300, help_text=_("One line for the signup page: what the person will receive.")
    )
    offers_email = models.BooleanField(default=True)
    offers_postal = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(
        default=True, help_text=_("Offered on the signup page (needs a published consent text).")
    )
    # Not editable: turning a mailing list into tracking (or back) would give everyone's
    # consents a meaning they never agreed to. The one tracking purpose is seeded.
    kind = models.CharField(
        max_length=10, choices=Kind.choices, default=Kind.MAILING, db_default=Kind.MAILING, editable=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(offers_email=True) | models.Q(offers_postal=True),
                name="purpose_offers_a_channel",
            ),
            # Opens and clicks exist only for email.
            models.CheckConstraint(
                condition=~models.Q(kind="tracking") | models.Q(offers_email=True, offers_postal=False),
                name="purpose_tracking_email_only",
            ),
            # "Has this person agreed to tracking?" has one answer, not one per purpose.
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(kind="tracking"), name="purpose_one_tracking"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The admin form leaves ``kind`` out, which makes Django skip the check constraint
        # above: say it here, or the save would fail in the database.
        if self.kind == self.Kind.TRACKING and (self.offers_postal or not self.offers_email):
            raise ValidationError({"offers_postal": _("Noting opens and clicks is offered by email only.")})

    @property
    def is_tracking(self) -> bool:
        return self.kind == self.Kind.TRACKING

    @property
    def channels(self) -> list[Channel]:
        return [
            c
            for c, offered in ((Channel.EMAIL, self.offers_email), (Channel.POSTAL, self.offers_postal))
            if offered
        ]


class ConsentText(models.Model):
    """One published version of what a person is told before agreeing to a purpose.

    Published versions never change: editing publishes a new version
    (``services.consent_text_publish``); a PostgreSQL trigger refuses UPDATE and DELETE.
    """

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="texts")
    language = models.CharField(max_length=10, default="en")
    version = models.PositiveIntegerField()
    statement = models.CharField(
        max_length=300, help_text=_('The checkbox label, e.g. "Yes, email me the monthly newsletter."')
    )
    data_collected = models.TextField(help_text=_("What we keep."))
    use = models.TextField(help_text=_("Why we ask and how we use it."))
    frequency = models.CharField(max_length=300, help_text=_("How often mail comes."))
    retention = models.TextField(help_text=_("How long we keep the data."))
    controller = models.TextField(help_text=_("Who we are and how to reach us."))
    withdrawal = models.TextField(help_text=_("How to stop, at any time."))
    digest = models.CharField(max_length=64, editable=False)
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )

    CONTENT_FIELDS = (
        "statement",
        "data_collected",
        "use",
        "frequency",
        "retention",
        "controller",
        "withdrawal",
    )

    class Meta:
        ordering = ["purpose", "language", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["purpose", "language", "version"], name="consent_text_version_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.purpose} v{self.version} ({self.language})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableRecordError("A published consent text never changes; publish a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableRecordError("A published consent text cannot be deleted.")


class Subscriber(models.Model):
    # NULL once erased: many erased rows may coexist under the unique constraint, "" could not.
    email = models.CharField(max_length=254, null=True, blank=True)  # noqa: DJ001
    # Keyed hash of the lower-cased address: matches suppressions without keeping the address.
    email_hash = models.CharField(max_length=64, editable=False, default="")
    name = models.CharField(max_length=150, blank=True)
    language = models.CharField(max_length=10, default="en")
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    city = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Nothing is sent to a paused subscriber until this moment (preference centre).
    paused_until = models.DateTimeField(null=True, blank=True)
    # Part of every preferences link; raising it revokes every such link already sent.
    link_generation = models.PositiveIntegerField(default=1, db_default=1, editable=False)
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Head of this subscriber's hash chain: each subscriber has their own chain, so
    # concurrent signups never wait on one global ledger lock.
    ledger_seq = models.PositiveIntegerField(default=0, editable=False)
    ledger_head = models.CharField(max_length=64, default="", editable=False)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique")]
        # A plain index: db_index on a CharField adds a LIKE twin on PostgreSQL that no query
        # uses and every insert pays for. Foreign keys below skip their own index where a
        # unique constraint or another index already starts with that column, or where the
        # row pointed at can never be deleted.
        indexes = [models.Index(fields=["email_hash"], name="subscriber_email_hash_idx")]

    def __str__(self) -> str:
        return self.email or f"erased subscriber #{self.pk}"

    @property
    def postal_address(self) -> str:
        parts = [
            self.address_line1,
            self.address_line2,
            f"{self.postal_code} {self.city}".strip(),
            self.country,
        ]
        return "\n".join(p for p in parts if p)


class Suppression(models.Model):
    """An address that must never be mailed again, kept only as a keyed hash.

    Written by bounces, complaints, provider unsubscribes and erasures
    (``services.address_suppress``); the sending selector leaves out every subscriber whose
    ``email_hash`` has a suppression in force here.
    """

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", _("Hard bounce")
        SOFT_BOUNCES = "soft_bounces", _("Repeated soft bounces")
        COMPLAINT = "complaint", _("Spam complaint")
        PROVIDER_UNSUBSCRIBE = "provider_unsubscribe", _("Unsubscribed at the provider")
        ERASURE = "erasure", _("Erased on request")
        MANUAL = "manual", _("Added by staff")

    email_hash = models.CharField(max_length=64, db_index=True)
    reason = models.CharField(max_length=30, choices=Reason.choices)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A lifted suppression no longer holds mail back; the row stays as the record of who
    # lifted it, when and why (``services.suppression_lift``).
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lifted_by_label = models.CharField(max_length=150, blank=True)
    lift_note = models.TextField(blank=True)

    class Meta:
        constraints = [
            # One suppression in force per address; lifted ones are history.
            models.UniqueConstraint(
                fields=["email_hash"],
                condition=models.Q(lifted_at__isnull=True),
                name="suppression_one_in_force",
            )
        ]
        permissions = [("lift_suppression", "Can lift a suppression")]

    def __str__(self) -> str:
        return f"suppressed ({self.get_reason_display()})"

    @property
    def in_force(self) -> bool:
        return self.lifted_at is None


class ConfirmationRequestQuerySet(models.QuerySet["ConfirmationRequest"]):
    def open(self, now: datetime | None = None) -> ConfirmationRequestQuerySet:
        """The requests whose link still works at ``now``: ``ConfirmationRequest.is_open`` in SQL."""
        return self.filter(
            confirmed_at__isnull=True, expired_at__isnull=True, expires_at__gt=now or timezone.now()
        )


class ConfirmationRequest(models.Model):
    """One double opt-in round: the requested consents wait for the emailed link."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscriber = models.ForeignKey(Subscriber, on_delete=models.PROTECT, related_name="confirmation_requests")
    # Name and postal address typed at signup, applied only once the address owner confirms,
    # so nobody can change someone else's profile by signing up with their address.
    profile = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    email_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    objects = ConfirmationRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["expires_at"],
                name="confirmation_open_idx",
                condition=models.Q(confirmed_at__isnull=True, expired_at__isnull=True),
            ),
            # The few whose email has not gone out yet (tasks.send_unsent_emails looks for them).
            models.Index(
                fields=["created_at"],
                name="confirmation_unsent_idx",
                condition=models.Q(
                    email_sent_at__isnull=True, confirmed_at__isnull=True, expired_at__isnull=True
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"confirmation {self.pk}"

    @property
    def is_open(self) -> bool:
        # The conditions of ConfirmationRequestQuerySet.open: change both together.
        return self.confirmed_at is None and self.expired_at is None and self.expires_at > timezone.now()


class EmailChangeRequestQuerySet(models.QuerySet["EmailChangeRequest"]):
    def open(self, now: datetime | None = None) -> EmailChangeRequestQuerySet:
        """The changes whose link still works at ``now``: ``EmailChangeRequest.is_open`` in SQL."""
        return self.filter(
            confirmed_at__isnull=True, cancelled_at__isnull=True, expires_at__gt=now or timezone.now()
        )


class EmailChangeRequest(models.Model):
    """A new address waiting for its owner to confirm it; the old one stays in use until then."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscriber = models.ForeignKey(Subscriber, on_delete=models.CASCADE, related_name="email_changes")
    new_email = models.CharField(max_length=254)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Set right after each email leaves, so a retried task never sends it twice.
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    notice_sent_at = models.DateTimeField(null=True, blank=True)

    objects = EmailChangeRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"address change {self.pk}"

    @property
    def is_open(self) -> bool:
        # The conditions of EmailChangeRequestQuerySet.open: change both together.
        return self.confirmed_at is None and self.cancelled_at is None and self.expires_at > timezone.now()


class BytewiseCharField(models.CharField):
    """Text compared byte by byte: PostgreSQL's "C" collation; SQLite compares bytes already.

    For machine-made values (hex digests) that are only ever matched and indexed, never sorted
    for people: a linguistic collation orders them exactly as bytes do, only several times
    slower. Declared on the field, rather than only in a migration, so that a later AlterField
    keeps it.
    """

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params


class ImmutableRecordError(Exception):
    """Raised on any attempt to change or remove a ledger record."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> NoReturn:
        raise ImmutableRecordError("The consent ledger is append-only.")

    def delete(self) -> NoReturn:
        raise ImmutableRecordError("The consent ledger is append-only.")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableRecordError("The consent ledger is append-only.")


class ConsentEvent(models.Model):
    """One entry of the append-only, hash-chained consent ledger."""

    class Kind(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        CONFIRMED = "confirmed", _("Confirmed")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        EXPIRED = "expired", _("Request expired")
        # Changes to how and when a consent is used, and to the person's own data. Events
        # about the subscriber as a whole (profile, pause, erasure) carry no purpose.
        FREQUENCY_CHANGED = "frequency_changed", _("Frequency changed")
        PAUSED = "paused", _("Paused")
        RESUMED = "resumed", _("Pause ended")
        PROFILE_CHANGED = "profile_changed", _("Profile changed")
        EMAIL_CHANGE_REQUESTED = "email_change_requested", _("Address change requested")
        EMAIL_CHANGED = "email_changed", _("Address changed")
        SUPPRESSED = "suppressed", _("Suppressed")
        SUPPRESSION_LIFTED = "suppression_lifted", _("Suppression lifted")
        ERASED = "erased", _("Personal data erased")

    class Source(models.TextChoices):
        SIGNUP_PAGE = "signup_page", _("Signup page")
        CONFIRMATION_LINK = "confirmation_link", _("Confirmation link")
        PREFERENCE_CENTRE = "preference_centre", _("Preference centre")
        UNSUBSCRIBE_LINK = "unsubscribe_link", _("Unsubscribe link")
        ADMIN = "admin", _("Admin")
        IMPORT = "import", _("Import")
        PROVIDER = "provider", _("Email provider")
        SYSTEM = "system", _("System")
        MANAGE_PAGE = "manage_page", _("Manage-my-subscription page")

    class Actor(models.TextChoices):
        SUBSCRIBER = "subscriber", _("The subscriber")
        STAFF = "staff", _("Staff user")
        PROVIDER = "provider", _("Email provider")
        SYSTEM = "system", _("System")

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.PROTECT, related_name="consent_events", db_index=False
    )
    seq = models.PositiveIntegerField()
    # Empty for events about the subscriber as a whole (profile, pause, erasure).
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    consent_text = models.ForeignKey(
        ConsentText, on_delete=models.PROTECT, related_name="+", null=True, blank=True, db_index=False
    )
    request = models.ForeignKey(
        ConfirmationRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    occurred_at = models.DateTimeField()
    source = models.CharField(max_length=30, choices=Source.choices)
    actor = models.CharField(max_length=20, choices=Actor.choices)
    # The staff user is kept by id and name: a later change to the user must not touch the ledger.
    actor_user_id = models.IntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, blank=True)
    evidence_digest = models.CharField(max_length=64)
    prev_hash = models.CharField(max_length=64)
    hash = BytewiseCharField(max_length=64)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["subscriber_id", "seq"]
        constraints = [
            # Two writers racing on one chain cannot both append the same position.
            models.UniqueConstraint(fields=["subscriber", "seq"], name="consent_event_chain_position"),
            models.UniqueConstraint(fields=["hash"], name="consent_event_hash_unique"),
        ]
        indexes = [models.Index(fields=["occurred_at"], name="consent_event_time_idx")]
        permissions = [
            ("view_consent_proof", "Can view and download proof of consent"),
            ("view_consent_evidence", "Can see IP addresses and user agents in the ledger"),
        ]

    def __str__(self) -> str:
        if self.purpose_id is None:
            return f"#{self.seq} {self.kind}"
        return f"#{self.seq} {self.kind} {self.purpose_id}/{self.channel}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableRecordError("The consent ledger is append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise ImmutableRecordError("The consent ledger is append-only.")


class ConsentEvidence(models.Model):
    """Personal data behind one ledger event. The event keeps a salted digest of it.

    An erasure may blank these fields; the event and its chain stay intact.
    """

    event = models.OneToOneField(
        ConsentEvent, on_delete=models.PROTECT, primary_key=True, related_name="evidence"
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    page_url = models.TextField(blank=True)
    submitted = models.JSONField(default=dict, blank=True)
    salt = models.CharField(max_length=32)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "consent evidence"

    def __str__(self) -> str:
        return f"evidence for event {self.event_id}"


class Frequency(models.TextChoices):
    EVERY = "every", _("Every issue")
    WEEKLY = "weekly", _("At most once a week")
    MONTHLY = "monthly", _("At most once a month")


class ConsentState(models.Model):
    """Who consents to what, on which channel, right now: derived from the ledger."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting confirmation")
        ACTIVE = "active", _("Active")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        EXPIRED = "expired", _("Request expired")

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.PROTECT, related_name="consents", db_index=False
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="consents", db_index=False)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    status = models.CharField(max_length=20, choices=Status.choices)
    consent_text = models.ForeignKey(ConsentText, on_delete=models.PROTECT, related_name="+", db_index=False)
    requested_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    last_event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+", db_index=False)
    # The subscriber's choice of how often (a FREQUENCY_CHANGED event records each change),
    # and when we last sent for this purpose on this channel, which enforces it.
    frequency = models.CharField(
        max_length=10, choices=Frequency.choices, default=Frequency.EVERY, db_default=Frequency.EVERY
    )
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["purpose__position", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "purpose", "channel"], name="consent_state_unique"),
        ]
        indexes = [models.Index(fields=["purpose", "channel", "status"], name="consent_state_lookup_idx")]

    def __str__(self) -> str:
        return f"{self.purpose_id}/{self.channel}: {self.status}"

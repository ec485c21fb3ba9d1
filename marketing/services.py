"""Every state change of a campaign, each with its audit row in the same transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from marketing.models import Campaign, CampaignAction, Delivery
from subscribers.models import Purpose
from subscribers.selectors import sendable_consents

Actor = AbstractBaseUser | AnonymousUser | None

EDITABLE_FIELDS = frozenset(
    {"name", "purpose", "layout", "subject", "preheader", "body_format", "body", "first_name_fallback"}
)


class CampaignStateError(Exception):
    """The campaign is not in a state that allows this; the message says why, for staff."""


class CampaignPurposeError(CampaignStateError):
    """The purpose is consent to tracking, not a mailing: nothing is ever sent for it."""


def campaign_purpose_check(*, purpose: Purpose | int | None) -> None:
    """Refuse (``CampaignPurposeError``) a purpose no campaign may be for: tracking."""
    if purpose is not None and not isinstance(purpose, Purpose):
        purpose = Purpose.objects.filter(pk=purpose).first()
    if purpose is not None and purpose.is_tracking:
        raise CampaignPurposeError(
            f"“{purpose.name}” is consent to noting opens and clicks, not a mailing: no campaign "
            "can be sent for it. Choose the kind of mail this campaign is."
        )


def _user(actor: Actor) -> Any:
    """The staff user behind an action, or None for the system (scheduler, dispatch)."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def _audit(campaign: Campaign, action: str, actor: Actor, **detail: Any) -> None:
    user = _user(actor)
    CampaignAction.objects.create(
        campaign=campaign,
        action=action,
        actor=user,
        actor_label=user.get_username() if user else "system",
        detail=detail,
    )


def _locked(campaign_id: int) -> Campaign:
    return Campaign.objects.select_for_update().get(pk=campaign_id)


def _run_on_commit(campaign_id: int) -> None:
    # Imported late: tasks import this module.
    from marketing import tasks

    # robust: with the broker down the campaign is still started; keep_campaigns_moving
    # queues its runner once the broker is back, and staff see no error.
    # Several runners at once, so every worker joins in from the first batch (claims never
    # overlap: SKIP LOCKED); each one stops when no batch is left.
    for _ in range(max(settings.DISPATCH_RUNNERS, 1)):
        transaction.on_commit(lambda: tasks.run_campaign.delay(campaign_id), robust=True)


@transaction.atomic
def campaign_create(*, actor: Actor, **fields: Any) -> Campaign:
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not campaign fields: {sorted(unknown)}")
    campaign_purpose_check(purpose=fields.get("purpose"))
    campaign = Campaign.objects.create(created_by=_user(actor), **fields)
    _audit(campaign, CampaignAction.Action.CREATE, actor)
    return campaign


@transaction.atomic
def campaign_update(*, campaign_id: int, actor: Actor, **fields: Any) -> Campaign:
    campaign = _locked(campaign_id)
    if not campaign.is_editable:
        raise CampaignStateError(
            f"A {campaign.get_status_display().lower()} campaign can no longer be edited."
        )
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not campaign fields: {sorted(unknown)}")
    if "purpose" in fields:
        campaign_purpose_check(purpose=fields["purpose"])
    changed = sorted(k for k, v in fields.items() if getattr(campaign, k) != v)
    for key, value in fields.items():
        setattr(campaign, key, value)
    campaign.save()
    _audit(campaign, CampaignAction.Action.EDIT, actor, fields=changed)
    return campaign


@transaction.atomic
def campaign_schedule(*, campaign_id: int, actor: Actor, at: datetime) -> Campaign:
    campaign = _locked(campaign_id)
    if not campaign.is_editable:
        raise CampaignStateError("Only a draft or scheduled campaign can be scheduled.")
    campaign_purpose_check(purpose=campaign.purpose_id)
    campaign.status, campaign.scheduled_at = Campaign.Status.SCHEDULED, at
    campaign.save(update_fields=["status", "scheduled_at", "updated_at"])
    _audit(campaign, CampaignAction.Action.SCHEDULE, actor, at=at.isoformat())
    return campaign


@transaction.atomic
def campaign_send(*, campaign_id: int, actor: Actor) -> Campaign:
    """Start sending now: snapshot the audience into deliveries and queue the workers.

    The snapshot is one INSERT … SELECT over the sending selector: no Python loop over
    subscribers, flat memory, and idempotent thanks to the unique (campaign, subscriber).
    """
    campaign = _locked(campaign_id)
    if not campaign.is_editable:
        raise CampaignStateError(f"A {campaign.get_status_display().lower()} campaign cannot be started.")
    campaign_purpose_check(purpose=campaign.purpose_id)
    recipients = _snapshot(campaign)
    now = timezone.now()
    campaign.status, campaign.started_at = Campaign.Status.SENDING, now
    campaign.recipients_count = recipients
    campaign.save(update_fields=["status", "started_at", "recipients_count", "updated_at"])
    _audit(campaign, CampaignAction.Action.SEND, actor, recipients=recipients)
    _run_on_commit(campaign.pk)
    return campaign


def _snapshot(campaign: Campaign) -> int:
    # In subscriber order, so the unique index grows at its end; no join for the model's ordering.
    audience = (
        sendable_consents(purpose_id=campaign.purpose_id).order_by("subscriber_id").values("subscriber_id")
    )
    select_sql, params = audience.query.sql_with_params()
    table = Delivery._meta.db_table
    with connection.cursor() as cursor:
        # "WHERE true" keeps SQLite from reading ON CONFLICT as part of the SELECT.
        cursor.execute(
            f"INSERT INTO {table} (campaign_id, subscriber_id, status, attempts, provider_message_id, error) "  # noqa: S608
            f"SELECT %s, audience.subscriber_id, %s, 0, '', '' FROM ({select_sql}) AS audience WHERE true "
            "ON CONFLICT DO NOTHING",
            [campaign.pk, Delivery.Status.QUEUED, *params],
        )
    return Delivery.objects.filter(campaign=campaign).count()


@transaction.atomic
def campaign_pause(
    *, campaign_id: int, actor: Actor, reason: str = "", detail: dict[str, Any] | None = None
) -> Campaign:
    """Stop sending after the batch in flight. ``detail`` goes into the audit row (e.g. the
    counts a guardrail saw)."""
    campaign = _locked(campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        raise CampaignStateError("Only a sending campaign can be paused.")
    campaign.status, campaign.paused_reason = Campaign.Status.PAUSED, reason[:300]
    campaign.save(update_fields=["status", "paused_reason", "updated_at"])
    _audit(campaign, CampaignAction.Action.PAUSE, actor, **(detail or {}), reason=reason)
    return campaign


@transaction.atomic
def campaign_resume(*, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _locked(campaign_id)
    if campaign.status != Campaign.Status.PAUSED:
        raise CampaignStateError("Only a paused campaign can be resumed.")
    campaign.status, campaign.paused_reason = Campaign.Status.SENDING, ""
    campaign.save(update_fields=["status", "paused_reason", "updated_at"])
    _audit(campaign, CampaignAction.Action.RESUME, actor)
    _run_on_commit(campaign.pk)
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign_id: int, actor: Actor) -> Campaign:
    campaign = _locked(campaign_id)
    if campaign.status in (Campaign.Status.SENT, Campaign.Status.CANCELLED):
        raise CampaignStateError(f"A {campaign.get_status_display().lower()} campaign cannot be cancelled.")
    campaign.status, campaign.finished_at = Campaign.Status.CANCELLED, timezone.now()
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    _audit(campaign, CampaignAction.Action.CANCEL, actor, unsent=campaign.queued_count)
    return campaign


@transaction.atomic
def campaign_finish_if_done(*, campaign_id: int) -> bool:
    campaign = _locked(campaign_id)
    if campaign.status != Campaign.Status.SENDING:
        return False
    open_statuses = (Delivery.Status.QUEUED, Delivery.Status.CLAIMED)
    if Delivery.objects.filter(campaign_id=campaign_id, status__in=open_statuses).exists():
        return False
    campaign.status, campaign.finished_at = Campaign.Status.SENT, timezone.now()
    campaign.save(update_fields=["status", "finished_at", "updated_at"])
    _audit(
        campaign,
        CampaignAction.Action.FINISH,
        None,
        sent=campaign.sent_count,
        failed=campaign.failed_count,
        skipped=campaign.skipped_count,
    )
    return True


def campaigns_start_due(*, now: datetime | None = None) -> list[int]:
    """Start every scheduled campaign whose time has come (the scheduler calls this).

    Each start locks its campaign and checks its state, so a scheduler that comes back
    after downtime, or two that overlap, start each campaign once.
    """
    now = now or timezone.now()
    started = []
    due = Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now)
    for campaign_id in due.values_list("pk", flat=True):
        try:
            campaign_send(campaign_id=campaign_id, actor=None)
        except CampaignStateError:
            continue
        started.append(campaign_id)
    return started


@transaction.atomic
def campaign_record_test(*, campaign_id: int, actor: Actor, to: str) -> None:
    _audit(Campaign.objects.get(pk=campaign_id), CampaignAction.Action.TEST, actor, to=to)


@transaction.atomic
def campaign_count(
    *,
    campaign_id: int,
    sent: int = 0,
    failed: int = 0,
    skipped: int = 0,
    bounced: int = 0,
    complained: int = 0,
) -> None:
    Campaign.objects.filter(pk=campaign_id).update(
        sent_count=F("sent_count") + sent,
        failed_count=F("failed_count") + failed,
        skipped_count=F("skipped_count") + skipped,
        bounced_count=F("bounced_count") + bounced,
        complained_count=F("complained_count") + complained,
    )

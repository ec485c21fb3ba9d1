"""Celery entry points of the marketing app: ids in, one call out."""

from __future__ import annotations

import smtplib

from anymail.exceptions import AnymailAPIError
from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.db.models import Q
from django.utils import timezone

from marketing import dispatch, guardrails, provider_events, services
from marketing.models import Campaign, Delivery
from marketing.reports import rollup


# A dropped database connection (failover, restart) ends the run; a batch it held is
# reclaimed after DISPATCH_LEASE_SECONDS, so running again soon is safe.
@shared_task(
    name="marketing.run_campaign",
    acks_late=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=10,
)
def run_campaign(campaign_id: int, after: int = 0) -> int:
    """``after``: where the previous turn stopped claiming (``dispatch.run``); only a hint,
    so every other caller leaves it out."""
    outcome = dispatch.run(campaign_id=campaign_id, after=after)
    if outcome.more:
        # To the back of the queue: what was queued meanwhile goes first. On from where this
        # turn stopped: from 0, a turn's first claim can pass every row sent (claim_batch).
        run_campaign.delay(campaign_id, outcome.after)
    elif outcome.next_retry_in is not None:
        # Only retries are left: come back when the first is due, not at the next sweep.
        # Nothing was due anywhere, so a hint would save nothing.
        run_campaign.apply_async((campaign_id,), countdown=outcome.next_retry_in)
    return outcome.sent


@shared_task(name="marketing.start_due_campaigns")
def start_due_campaigns() -> list[int]:
    return services.campaigns_start_due()


@shared_task(name="marketing.keep_campaigns_moving")
def keep_campaigns_moving() -> int:
    """Queue a runner for each sending campaign with work due: retries that came due,
    batches left by a worker that died, or a run whose task was lost."""
    now = timezone.now()
    due = Delivery.objects.filter(
        Q(status=Delivery.Status.QUEUED, retry_after__isnull=True)
        | Q(status=Delivery.Status.QUEUED, retry_after__lte=now)
        | Q(status=Delivery.Status.CLAIMED),
        campaign__status=Campaign.Status.SENDING,
    )
    campaign_ids = list(due.values_list("campaign_id", flat=True).distinct())
    for campaign_id in campaign_ids:
        run_campaign.delay(campaign_id)
    return len(campaign_ids)


# OperationalError: a lock timeout or deadlock with another event for the same subscriber.
@shared_task(
    name="marketing.process_delivery_event",
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def process_delivery_event(event_id: int) -> str:
    return provider_events.delivery_event_process(event_id=event_id)


@shared_task(name="marketing.process_pending_delivery_events")
def process_pending_delivery_events() -> int:
    """Queue the events whose processing task was lost (e.g. the broker was down)."""
    event_ids = provider_events.delivery_events_pending()
    for event_id in event_ids:
        process_delivery_event.delay(event_id)
    return len(event_ids)


@shared_task(
    name="marketing.notify_campaign_paused",
    autoretry_for=(smtplib.SMTPException, OSError, AnymailAPIError),
    retry_backoff=True,
    max_retries=5,
)
def notify_campaign_paused(campaign_id: int) -> int:
    return guardrails.send_pause_notice(campaign_id=campaign_id)


@shared_task(name="marketing.refresh_reports")
def refresh_reports() -> dict[str, int]:
    """Rebuild the report rollups: sent per hour of moving campaigns, list health per day."""
    return rollup.reports_refresh()

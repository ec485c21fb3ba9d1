"""Sending mechanics: claim a batch, re-check consent, send, record. No Celery here.

This module is the database side and the loop (``run``, ``claim_batch``, ``send_batch``
and the statement recording a batch); the sending itself is ``one_by_one`` (SMTP and
providers without batches) or ``provider_batches`` (one API call per batch), which report
what happened in the shapes of ``send_outcomes``.

Guarantees:
- A recipient is sent a campaign at most once in normal operation: each Delivery row is
  claimed by one worker (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite
  serialises writers) and marked sent right after the provider accepts it.
- A worker that dies leaves its claimed batch behind; after ``DISPATCH_LEASE_SECONDS``
  another worker reclaims it. Re-sends are limited to that one batch.
- Consent and suppression are re-checked for every batch just before it is sent, through
  the one sending selector, so a withdrawal takes effect before the next batch.
- No network call happens inside a database transaction.
- Open and click tracking only for subscribers who agreed to it, checked per batch like
  consent: they get the tracked copy (``tracking.tracked_copy``), everyone else the plain
  one; the provider is never allowed its own tracking (``tracking.disable_provider_tracking``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q
from django.utils import timezone

from marketing import (
    batching,
    guardrails,
    one_by_one,
    provider_batches,
    rendering,
    services,
    throttle,
    tracking,
)
from marketing.models import Campaign, Delivery
from marketing.send_outcomes import Outcomes, Retries
from subscribers import services as subscriber_services
from subscribers.addresses import smtp_address
from subscribers.id_arrays import in_ids
from subscribers.selectors import sendable_consents


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    provider_ids: dict[int, str] = field(default_factory=dict)
    # Set when temporary failures reached DISPATCH_MAX_ATTEMPTS: the provider is down for long.
    outage: str = ""


def claim_batch(*, campaign_id: int, size: int, after: int = 0) -> list[int]:
    """Claim up to ``size`` deliveries that are due: queued, or claimed by a worker presumed dead.

    ``after``: the highest id this runner claimed before. Deliveries are claimed in id order,
    so below it everything is sent, in flight or waiting for a retry. The first query takes
    the queued rows past it, which is an ordered range of the claim index whatever the
    planner's statistics say: at a million recipients, the one query for everything due cost
    ~0.25 s a claim (it sorted every queued row, or scanned the primary key from the start
    past every row already sent). Only when nothing is queued past ``after`` is the whole
    campaign looked at, so retries and batches left by a dead worker are still found, later.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.DISPATCH_LEASE_SECONDS)
    due = Q(status=Delivery.Status.QUEUED) & (Q(retry_after__isnull=True) | Q(retry_after__lte=now))
    abandoned = Q(status=Delivery.Status.CLAIMED, claimed_at__lt=stale)
    deliveries = Delivery.objects.filter(campaign_id=campaign_id)
    with transaction.atomic():
        ids: list[int] = []
        for claimable in (deliveries.filter(due, id__gt=after), deliveries.filter(due | abandoned)):
            ids = list(
                claimable.order_by("id")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:size]
            )
            if ids:
                break
        if ids:
            # Counting attempts at claim time also catches a batch that kills its worker every time.
            Delivery.objects.filter(id__in=in_ids(ids)).update(
                status=Delivery.Status.CLAIMED, claimed_at=now, attempts=F("attempts") + 1
            )
    return ids


@dataclass(frozen=True)
class RunOutcome:
    sent: int
    # Seconds until the earliest retry is due, when retries are all that is left.
    next_retry_in: float | None = None
    # The run used up its DISPATCH_RUN_SECONDS with batches still due: queue it again,
    # passing ``after`` on.
    more: bool = False
    # The highest id of the run's last claim: ``claim_batch``'s ``after`` for the next turn.
    after: int = 0


def run(*, campaign_id: int, after: int = 0) -> RunOutcome:
    """Send batches of ``campaign_id`` until none is due, the campaign stops sending, or
    ``DISPATCH_RUN_SECONDS`` have passed (``more``): a worker then takes the tasks queued
    meanwhile, such as someone's double opt-in email, before this campaign's next turn.

    ``after``: the previous turn's ``RunOutcome.after``, where this turn's first claim
    starts (see ``claim_batch``); 0 looks at the whole campaign.
    """
    started = time.monotonic()
    total = 0
    prepared: rendering.PreparedCampaign | None = None
    tracked: rendering.PreparedCampaign | None = None
    while True:
        campaign = Campaign.objects.select_related("purpose", "layout").get(pk=campaign_id)
        if campaign.status != Campaign.Status.SENDING:
            return RunOutcome(sent=total, after=after)
        ids = claim_batch(campaign_id=campaign_id, size=settings.DISPATCH_BATCH_SIZE, after=after)
        if not ids:
            if services.campaign_finish_if_done(campaign_id=campaign_id):
                return RunOutcome(sent=total, after=after)
            return RunOutcome(sent=total, next_retry_in=_next_retry_in(campaign_id), after=after)
        if prepared is None or tracked is None:
            prepared = rendering.prepare(campaign)
            tracked = tracking.tracked_copy(prepared, campaign)
        after = max(ids)
        result = send_batch(campaign=campaign, prepared=prepared, tracked=tracked, delivery_ids=ids)
        total += result.sent
        if result.outage:
            _pause_for_outage(campaign_id, result.outage)
            return RunOutcome(sent=total, after=after)
        _pause_if_failing(campaign_id)
        # Complaints and bounces arrive by webhook; the sample they are measured on grows here.
        guardrails.campaign_guard(campaign_id=campaign_id)
        if time.monotonic() - started >= settings.DISPATCH_RUN_SECONDS:
            return RunOutcome(sent=total, more=True, after=after)


def send_batch(
    *,
    campaign: Campaign,
    prepared: rendering.PreparedCampaign,
    delivery_ids: list[int],
    tracked: rendering.PreparedCampaign | None = None,
) -> BatchResult:
    """Send the claimed ``delivery_ids``: ``prepared`` to most, ``tracked`` (made from
    ``prepared`` when not given) to those who agreed to tracking."""
    rows = list(
        Delivery.objects.filter(id__in=in_ids(delivery_ids), status=Delivery.Status.CLAIMED).values_list(
            "id",
            "subscriber_id",
            "subscriber__email",
            "subscriber__name",
            "subscriber__link_generation",
            "attempts",
        )
    )
    consented = dict(
        sendable_consents(purpose_id=campaign.purpose_id)
        .filter(subscriber_id__in=in_ids(r[1] for r in rows))
        .order_by()
        .values_list("subscriber_id", "confirmed_at")
    )
    trackable = tracking.trackable_subscriber_ids(subscriber_ids=consented)
    tracking_url = tracking.url_maker() if trackable else None
    if trackable and tracked is None:
        tracked = tracking.tracked_copy(prepared, campaign)
    result = BatchResult()
    outcomes: Outcomes = {}
    to_send = []
    for delivery_id, subscriber_id, email, name, generation, attempts in rows:
        if subscriber_id not in consented or not email:
            outcomes[delivery_id] = (Delivery.Status.SKIPPED, "", "no longer eligible at send time")
            continue
        recipient = rendering.Recipient(
            subscriber_id=subscriber_id,
            email=smtp_address(email),  # IDNA 2008, before Django's IDNA 2003 sees it
            name=name,
            consented_at=consented[subscriber_id],
            link_generation=generation,
            tracking_url=tracking_url(delivery_id) if tracking_url and subscriber_id in trackable else "",
        )
        to_send.append((delivery_id, attempts, recipient))

    retry: Retries = {}
    if to_send:
        throttle.acquire(len(to_send))
    if to_send and batching.supported():
        # One call per copy: a provider personalises values, not which body a recipient gets.
        for copy, group in (
            (tracked, [t for t in to_send if t[2].tracking_url]),
            (prepared, [t for t in to_send if not t[2].tracking_url]),
        ):
            if group and copy is not None:
                provider_batches.send_as_one(
                    campaign_id=campaign.pk, prepared=copy, to_send=group, outcomes=outcomes, retry=retry
                )
    elif to_send:
        one_by_one.send_one_by_one(
            campaign_id=campaign.pk,
            copies=(prepared, tracked or prepared),
            to_send=to_send,
            outcomes=outcomes,
            retry=retry,
        )
    subscriber_of = {row[0]: row[1] for row in rows}
    carried = {delivery_id for delivery_id, _, recipient in to_send if recipient.tracking_url}
    _record(
        campaign=campaign,
        outcomes=outcomes,
        retry=retry,
        result=result,
        subscriber_of=subscriber_of,
        tracked_ids=carried,
    )
    return result


def _record(
    *,
    campaign: Campaign,
    outcomes: Outcomes,
    retry: Retries,
    result: BatchResult,
    subscriber_of: dict[int, int],
    tracked_ids: set[int],
) -> None:
    campaign_id = campaign.pk
    now = timezone.now()
    with transaction.atomic():
        for status, _provider_id, _error in outcomes.values():
            result.sent += status == Delivery.Status.SENT
            result.failed += status == Delivery.Status.FAILED
            result.skipped += status == Delivery.Status.SKIPPED
        _write_outcomes(outcomes, now, tracked_ids)
        # A temporary failure never becomes a failed delivery (nor counts towards the failure
        # rate): past DISPATCH_MAX_ATTEMPTS the campaign pauses instead, keeping them queued.
        if any(attempts >= settings.DISPATCH_MAX_ATTEMPTS for attempts, _ in retry.values()):
            result.outage = f"{len(retry)} messages failed temporarily {settings.DISPATCH_MAX_ATTEMPTS} times"
        later: dict[float, list[int]] = {}
        for delivery_id, (_attempts, delay) in retry.items():
            later.setdefault(delay, []).append(delivery_id)
        for delay, ids in later.items():
            Delivery.objects.filter(pk__in=ids).update(
                status=Delivery.Status.QUEUED, retry_after=now + timedelta(seconds=delay)
            )
            result.retried += len(ids)
        services.campaign_count(
            campaign_id=campaign_id, sent=result.sent, failed=result.failed, skipped=result.skipped
        )
        # Their "at most weekly/monthly" choice counts from this send.
        subscriber_services.consents_mark_sent(
            purpose_id=campaign.purpose_id,
            subscriber_ids=[
                subscriber_of[d] for d, (status, _, _) in outcomes.items() if status == Delivery.Status.SENT
            ],
            at=now,
        )


def _write_outcomes(outcomes: Outcomes, now: datetime, tracked_ids: set[int]) -> None:
    """Every row's own status, provider id and error in ONE statement (UPDATE … FROM unnest),
    and ``Delivery.tracked`` for the messages that went out with tracking (what
    ``tracking.deliveries_mark_tracked`` does, without rewriting those rows a second time).

    ``bulk_update`` builds a CASE per row and field in Python: measured by ``make bench`` at
    about 0.5 ms a row, the largest cost of a provider batch; this is a few µs a row.
    """
    if not outcomes:
        return
    table = Delivery._meta.db_table
    rows = [
        (d, s, p, e[:500], s == Delivery.Status.SENT and d in tracked_ids)
        for d, (s, p, e) in outcomes.items()
    ]
    # The table name and placeholders are ours; every value is a parameter.
    if connection.vendor == "postgresql":
        # Five arrays, not five parameters a row: psycopg parses a statement with thousands
        # of placeholders in Python, every time (it was a tenth of a batch's CPU in cProfile).
        arrays = "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::boolean[]"
        source = f"unnest({arrays}) AS v(column1, column2, column3, column4, column5)"
        params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    else:
        # VALUES columns are named column1… on SQLite too.
        source = f"(VALUES {', '.join(['(%s, %s, %s, %s, %s)'] * len(rows))}) AS v"
        params = [value for row in rows for value in row]
    sql = (
        f"UPDATE {table} SET status = v.column2, provider_message_id = v.column3, error = v.column4, "  # noqa: S608
        "sent_at = CASE WHEN v.column2 = %s THEN %s ELSE NULL END, tracked = v.column5 "
        f"FROM {source} WHERE {table}.id = v.column1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Delivery.Status.SENT, connection.ops.adapt_datetimefield_value(now), *params])


def _next_retry_in(campaign_id: int) -> float | None:
    deliveries = Delivery.objects.filter(campaign_id=campaign_id)
    retry_at = deliveries.filter(status=Delivery.Status.QUEUED, retry_after__isnull=False).aggregate(
        at=Min("retry_after")
    )["at"]
    # A batch whose worker died (or lost its database connection) is due when its lease ends.
    claimed_at = deliveries.filter(status=Delivery.Status.CLAIMED).aggregate(at=Min("claimed_at"))["at"]
    lease_ends = claimed_at + timedelta(seconds=settings.DISPATCH_LEASE_SECONDS) if claimed_at else None
    due = [at for at in (retry_at, lease_ends) if at is not None]
    if not due:
        return None
    return max((min(due) - timezone.now()).total_seconds(), 0.0)


def _pause_for_outage(campaign_id: int, what: str) -> None:
    with contextlib.suppress(services.CampaignStateError):  # already paused or cancelled
        services.campaign_pause(
            campaign_id=campaign_id,
            actor=None,
            reason=f"Paused automatically: the email provider kept failing ({what}). "
            "Nobody was marked failed; resume once it works again.",
        )


def _pause_if_failing(campaign_id: int) -> None:
    campaign = Campaign.objects.get(pk=campaign_id)
    done = campaign.sent_count + campaign.failed_count
    if done < settings.DISPATCH_FAILURE_MIN_SAMPLE:
        return
    rate = campaign.failed_count / done
    if rate > settings.DISPATCH_MAX_FAILURE_RATE:
        with contextlib.suppress(services.CampaignStateError):  # already paused or cancelled
            services.campaign_pause(
                campaign_id=campaign_id,
                actor=None,
                reason=f"Paused automatically: {rate:.0%} of messages failed "
                f"(limit {settings.DISPATCH_MAX_FAILURE_RATE:.0%}). Check the failures, then resume.",
            )

"""The reports' rollups, rebuilt by a Celery beat task (``marketing.refresh_reports``).

**Sent and tracked per hour.** Dispatch keeps ``Campaign.sent_count`` but not when each
message left nor whether it carried tracking; both are counted here from the deliveries,
one aggregate per campaign whose sum no longer matches its ``sent_count`` (a campaign
sending now, or one never rolled up), so finished campaigns cost nothing.

**Unsubscribed per hour**, for each campaign whose attribution window
(``campaign.unsubscribe_window``) may still be open: one query over the ledger's
withdrawals in the window.

**List health per day.** For each purpose and channel: consent requests, confirmations and
withdrawals from the ledger (its ``occurred_at`` index), and active consents at the end of
the day; list-wide: new subscribers, suppressions, and subscribers with any active
consent. Today and yesterday are rebuilt on every run (late events); on the first run
``LIST_HEALTH_DAYS`` days are. Active consents are counted now and walked back
through the days being rebuilt (minus that day's confirmations, plus its withdrawals), an
estimate for days before the rollup first ran; days already rolled up keep their count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate, TruncHour
from django.utils import timezone

from marketing.models import Campaign, CampaignStat, Delivery, ListHealthDay
from marketing.reports.campaign import ATTRIBUTION_DAYS, unsubscribe_window, unsubscribers
from marketing.reports.counters import hour_of
from subscribers.models import ConsentEvent, ConsentState, Purpose, Subscriber, Suppression

Metric = CampaignStat.Metric
Kind = ConsentEvent.Kind
LEDGER_KINDS: dict[str, str] = {
    Kind.REQUESTED: "requested",
    Kind.CONFIRMED: "confirmed",
    Kind.WITHDRAWN: "withdrawn",
}


def campaign_stats_refresh(*, now: datetime | None = None) -> list[int]:
    """Rebuild sent, tracked and unsubscribed where they may have moved. The campaigns' ids."""
    now = now or timezone.now()
    moved = set(campaign_sends_refresh())
    # A day more than the window, so a window that closed since the last run is completed.
    since = now - timedelta(days=ATTRIBUTION_DAYS + 1)
    for campaign in Campaign.objects.filter(started_at__gte=since):
        campaign_unsubscribes_rebuild(campaign=campaign)
        moved.add(campaign.pk)
    return sorted(moved)


@transaction.atomic
def campaign_unsubscribes_rebuild(*, campaign: Campaign) -> None:
    window = unsubscribe_window(campaign)
    per_hour = Counter(hour_of(at) for at in (unsubscribers(campaign, window) if window else {}).values())
    CampaignStat.objects.filter(campaign_id=campaign.pk, metric=Metric.UNSUBSCRIBED).delete()
    CampaignStat.objects.bulk_create(
        CampaignStat(campaign_id=campaign.pk, metric=Metric.UNSUBSCRIBED, hour=hour, count=n)
        for hour, n in per_hour.items()
    )


def campaign_sends_refresh() -> list[int]:
    """Rebuild sent and tracked per hour for campaigns whose ``sent_count`` moved. Their ids."""
    stale = (
        Campaign.objects.filter(sent_count__gt=0)
        .annotate(rolled=Coalesce(Sum("stats__count", filter=Q(stats__metric=Metric.SENT)), 0))
        .exclude(rolled=F("sent_count"))
    )
    refreshed = []
    for campaign_id, started_at in stale.values_list("pk", "started_at"):
        campaign_sends_rebuild(campaign_id=campaign_id, fallback=started_at or timezone.now())
        refreshed.append(campaign_id)
    return refreshed


@transaction.atomic
def campaign_sends_rebuild(*, campaign_id: int, fallback: datetime) -> None:
    per_hour = (
        Delivery.objects.filter(campaign_id=campaign_id, status=Delivery.Status.SENT)
        .annotate(at=TruncHour("sent_at", tzinfo=UTC))
        .values("at")
        .annotate(sent=Count("id"), tracked=Count("id", filter=Q(tracked=True)))
        .order_by()
    )
    rows = []
    for bucket in per_hour:
        hour = hour_of(bucket["at"] or fallback)
        rows.append(
            CampaignStat(campaign_id=campaign_id, metric=Metric.SENT, hour=hour, count=bucket["sent"])
        )
        if bucket["tracked"]:
            rows.append(
                CampaignStat(
                    campaign_id=campaign_id, metric=Metric.TRACKED, hour=hour, count=bucket["tracked"]
                )
            )
    CampaignStat.objects.filter(campaign_id=campaign_id, metric__in=[Metric.SENT, Metric.TRACKED]).delete()
    CampaignStat.objects.bulk_create(rows)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


def _first_day(today: date) -> date:
    last = ListHealthDay.objects.aggregate(day=Max("day"))["day"]
    if last is not None:
        return min(last, today - timedelta(days=1))
    earliest = ConsentEvent.objects.aggregate(at=Min("occurred_at"))["at"]
    backfill = today - timedelta(days=max(settings.LIST_HEALTH_DAYS, 1) - 1)
    return max(backfill, timezone.localdate(earliest)) if earliest else today


def _per_day(queryset: QuerySet[Any], field: str) -> Counter[date]:
    rows = queryset.annotate(day=TruncDate(field)).values("day").annotate(n=Count("pk")).order_by()
    return Counter({row["day"]: row["n"] for row in rows})


@transaction.atomic
def list_health_refresh(*, now: datetime | None = None) -> int:
    """Rebuild the dashboard's days from the last one rolled up to today. Rows written."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    start = _first_day(today)
    days = [start + timedelta(days=n) for n in range((today - start).days + 1)]
    since, until = _midnight(start), _midnight(today + timedelta(days=1))

    ledger: dict[tuple[int, str], dict[date, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    events = (
        ConsentEvent.objects.filter(
            occurred_at__gte=since, occurred_at__lt=until, kind__in=LEDGER_KINDS, purpose__isnull=False
        )
        .annotate(day=TruncDate("occurred_at"))
        .values("day", "purpose_id", "channel", "kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in events:
        ledger[(row["purpose_id"], row["channel"])][row["day"]][LEDGER_KINDS[row["kind"]]] += row["n"]
    active_now = {
        (row["purpose_id"], row["channel"]): row["n"]
        for row in ConsentState.objects.filter(status=ConsentState.Status.ACTIVE)
        .values("purpose_id", "channel")
        .annotate(n=Count("id"))
        .order_by()
    }
    rows: list[ListHealthDay] = []
    for purpose in Purpose.objects.all():
        for channel in purpose.channels:
            key = (purpose.pk, str(channel))
            active = active_now.get(key, 0)
            for day in reversed(days):
                counts = ledger[key][day]
                rows.append(
                    ListHealthDay(
                        day=day, purpose=purpose, channel=channel, active=active, refreshed_at=now, **counts
                    )
                )
                active = max(active - counts["confirmed"] + counts["withdrawn"], 0)
    rows.extend(_list_wide(days, since, until, now))
    ListHealthDay.objects.filter(day__gte=start).delete()
    ListHealthDay.objects.bulk_create(rows)
    return len(rows)


def _list_wide(days: list[date], since: datetime, until: datetime, now: datetime) -> list[ListHealthDay]:
    joined = _per_day(Subscriber.objects.filter(created_at__gte=since, created_at__lt=until), "created_at")
    suppressed = _per_day(
        Suppression.objects.filter(created_at__gte=since, created_at__lt=until), "created_at"
    )
    # Past days keep the count their last rollup saw; only today's is counted now.
    kept = dict(ListHealthDay.objects.filter(purpose=None, day__gte=days[0]).values_list("day", "active"))
    kept[days[-1]] = ConsentState.objects.filter(status=ConsentState.Status.ACTIVE).aggregate(
        n=Count("subscriber_id", distinct=True)
    )["n"]
    return [
        ListHealthDay(
            day=day,
            purpose=None,
            channel="",
            active=kept.get(day),
            new_subscribers=joined[day],
            suppressed=suppressed[day],
            refreshed_at=now,
        )
        for day in days
    ]


def reports_refresh() -> dict[str, int]:
    """Everything the beat task rebuilds; what it did, for the task's result."""
    return {"campaigns": len(campaign_stats_refresh()), "list_health_rows": list_health_refresh()}

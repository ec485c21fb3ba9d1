"""A campaign's report: its funnel and timeline, from counters (selectors: no writes).

Targeted, sent, failed, skipped, bounced and complained are the campaign's own counters;
delivered, opened, clicked (and bounced, complained per hour) are ``CampaignStat`` rows
added as provider events are processed; sent and trackable per hour are rebuilt by the
rollup task, so they can trail dispatch by one ``LIST_HEALTH_ROLLUP_EVERY_SECONDS``.

**Unsubscribed** is recipients who withdrew consent to the campaign's purpose by email,
in any way (its link, the preference centre, the provider, a complaint), after it started
and before the next campaign for that purpose started, within ``ATTRIBUTION_DAYS``: the
last campaign they got is the one that made them go. Counting them reads the ledger's
events in that window, so the rollup task does it (while the window is open) and the
page reads the result.

**Opened** and **clicked** are shares of *trackable* recipients, those whose message
carried tracking because they agreed to it; nobody else's opens or clicks are known.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Min, Sum
from django.utils import timezone

from marketing.models import Campaign, CampaignStat, Delivery
from marketing.reports.counters import hour_of
from subscribers.models import Channel, ConsentEvent

Metric = CampaignStat.Metric
# Beyond this many hours the timeline counts per day.
HOURLY_UP_TO = 72
# A withdrawal later than this after a campaign started is not put down to that campaign.
ATTRIBUTION_DAYS = 30
TIMELINE_SERIES = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")


@dataclass(frozen=True)
class Stage:
    key: str
    label: str
    count: int
    base: int  # what the rate is a share of
    base_label: str

    @property
    def rate(self) -> float | None:
        return self.count / self.base if self.base else None


@dataclass(frozen=True)
class Timeline:
    bucket: str  # "hour" or "day"
    starts: list[datetime]
    series: dict[str, list[int]]


@dataclass(frozen=True)
class CampaignReport:
    campaign: Campaign
    stages: list[Stage]
    timeline: Timeline
    trackable: int

    def stage(self, key: str) -> Stage:
        return next(s for s in self.stages if s.key == key)


def unsubscribe_window(campaign: Campaign) -> tuple[datetime, datetime] | None:
    """From the campaign's start to the next start of a campaign for the same purpose, at most
    ``ATTRIBUTION_DAYS`` and not past now."""
    if campaign.started_at is None:
        return None
    later = Campaign.objects.filter(purpose_id=campaign.purpose_id, started_at__gt=campaign.started_at)
    next_start = later.order_by("started_at").values_list("started_at", flat=True).first()
    ends = [campaign.started_at + timedelta(days=ATTRIBUTION_DAYS), timezone.now()]
    return campaign.started_at, min([*ends, next_start] if next_start else ends)


def unsubscribers(campaign: Campaign, window: tuple[datetime, datetime]) -> dict[int, datetime]:
    """Recipients who withdrew the campaign's purpose in the window, with their first withdrawal."""
    recipients = Delivery.objects.filter(campaign_id=campaign.pk, status=Delivery.Status.SENT)
    rows = (
        ConsentEvent.objects.filter(
            kind=ConsentEvent.Kind.WITHDRAWN,
            purpose_id=campaign.purpose_id,
            channel=Channel.EMAIL,
            occurred_at__gte=window[0],
            occurred_at__lt=window[1],
            subscriber_id__in=recipients.values("subscriber_id"),
        )
        .values("subscriber_id")
        .annotate(first=Min("occurred_at"))
        .order_by()
    )
    return {row["subscriber_id"]: row["first"] for row in rows}


def campaign_report(campaign: Campaign) -> CampaignReport:
    per_hour: dict[str, Counter[datetime]] = defaultdict(Counter)
    stats = (
        CampaignStat.objects.filter(campaign_id=campaign.pk)
        .values("metric", "hour")
        .annotate(n=Sum("count"))
        .order_by()
    )
    for row in stats:
        per_hour[row["metric"]][row["hour"]] += row["n"]
    total = {metric: sum(counts.values()) for metric, counts in per_hour.items()}
    sent, trackable = campaign.sent_count, total.get(Metric.TRACKED, 0)
    targeted = campaign.recipients_count
    stages = [
        Stage("targeted", "Targeted", targeted, targeted, "targeted"),
        Stage("sent", "Sent", sent, targeted, "targeted"),
        Stage("delivered", "Delivered", total.get(Metric.DELIVERED, 0), sent, "sent"),
        Stage("bounced", "Bounced", campaign.bounced_count, sent, "sent"),
        Stage("complained", "Complained", campaign.complained_count, sent, "sent"),
        Stage("unsubscribed", "Unsubscribed", total.get(Metric.UNSUBSCRIBED, 0), sent, "sent"),
        Stage("trackable", "Trackable (agreed to tracking)", trackable, sent, "sent"),
        Stage("opened", "Opened", total.get(Metric.OPENED, 0), trackable, "trackable"),
        Stage("clicked", "Clicked", total.get(Metric.CLICKED, 0), trackable, "trackable"),
    ]
    return CampaignReport(campaign, stages, _timeline(campaign, per_hour), trackable)


def _timeline(campaign: Campaign, per_hour: dict[str, Counter[datetime]]) -> Timeline:
    hours = [h for key in TIMELINE_SERIES for h in per_hour[key]]
    if not hours:
        return Timeline("hour", [], {key: [] for key in TIMELINE_SERIES})
    first = hour_of(campaign.started_at) if campaign.started_at else min(hours)
    first = min(first, *hours)
    last = max(hours)
    span = int((last - first).total_seconds() // 3600) + 1
    if span <= HOURLY_UP_TO:
        step, bucket = timedelta(hours=1), "hour"
    else:
        step, bucket = timedelta(days=1), "day"
        first = first.replace(hour=0)
    count = int((last - first) / step) + 1
    starts = [first + step * n for n in range(count)]
    series = {key: [0] * count for key in TIMELINE_SERIES}
    for key in TIMELINE_SERIES:
        for hour, n in per_hour[key].items():
            series[key][int((hour - first) / step)] += n
    return Timeline(bucket, [s.astimezone(UTC) for s in starts], series)

"""The list-health dashboard's numbers, read from the daily rollup (selectors: no writes).

Per purpose and channel: active consents over time, and each day's consent requests
(sign-ups), confirmations and withdrawals; list-wide: new subscribers, suppressions and
subscribers with any active consent. Complaint rates are each campaign's own counters
against ``REPORT_COMPLAINT_LINE`` (0.3%, the rate Gmail and Yahoo say never to reach) and
the guardrail that pauses a campaign (``GUARDRAIL_COMPLAINT_RATE``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from marketing.models import Campaign, ListHealthDay
from subscribers.models import Purpose

RECENT_CAMPAIGNS = 20


@dataclass(frozen=True)
class Activity:
    day: date
    new_subscribers: int = 0
    requested: int = 0
    confirmed: int = 0
    withdrawn: int = 0
    suppressed: int = 0
    subscribed: int | None = None  # subscribers with any active consent, where known


@dataclass(frozen=True)
class ComplaintRate:
    campaign: Campaign

    @property
    def rate(self) -> float:
        return self.campaign.complained_count / self.campaign.sent_count

    @property
    def rate_text(self) -> str:
        return f"{self.rate:.2%}"

    @property
    def over_line(self) -> bool:
        return self.rate >= settings.REPORT_COMPLAINT_LINE

    @property
    def over_guardrail(self) -> bool:
        return self.rate >= settings.GUARDRAIL_COMPLAINT_RATE


@dataclass
class Dashboard:
    days: list[date]
    # (purpose name, channel label) -> active consents per day (None: not rolled up)
    active: dict[str, list[int | None]] = field(default_factory=dict)
    activity: list[Activity] = field(default_factory=list)
    complaints: list[ComplaintRate] = field(default_factory=list)
    refreshed_at: datetime | None = None


def consent_label(purpose: Purpose, channel: str) -> str:
    return purpose.name if channel == "email" else f"{purpose.name} ({channel})"


def list_health(*, days: int | None = None) -> Dashboard:
    days = days or settings.LIST_HEALTH_DAYS
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = list(ListHealthDay.objects.filter(day__gte=first).select_related("purpose").order_by("day"))
    shown = sorted({row.day for row in rows})
    index = {day: i for i, day in enumerate(shown)}
    board = Dashboard(days=shown)
    board.refreshed_at = max((row.refreshed_at for row in rows), default=None)
    per_day: dict[date, dict[str, int | None]] = defaultdict(lambda: defaultdict(int))
    positions: dict[str, tuple[int, int]] = {}
    for row in rows:
        totals = per_day[row.day]
        if row.purpose is None:
            totals["new_subscribers"] = row.new_subscribers
            totals["suppressed"] = row.suppressed
            totals["subscribed"] = row.active
            continue
        label = consent_label(row.purpose, row.channel)
        positions[label] = (row.purpose.position, row.purpose.pk)
        line = board.active.setdefault(label, [None] * len(shown))
        line[index[row.day]] = row.active
        for name in ("requested", "confirmed", "withdrawn"):
            totals[name] = (totals[name] or 0) + getattr(row, name)
    board.active = {label: board.active[label] for label in sorted(board.active, key=positions.__getitem__)}
    board.activity = [Activity(day=day, **per_day[day]) for day in shown]  # type: ignore[arg-type]
    board.complaints = complaint_rates()
    return board


def complaint_rates(*, limit: int = RECENT_CAMPAIGNS) -> list[ComplaintRate]:
    """The latest campaigns that sent anything, newest first."""
    sent = Campaign.objects.filter(sent_count__gt=0).order_by("-started_at", "-pk")[:limit]
    return [ComplaintRate(campaign) for campaign in sent]

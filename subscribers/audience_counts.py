"""A purpose's audience breakdown for pages to show, counted in the background when large.

``selectors.audience_breakdown`` reads every consent of a purpose: 3 ms at a thousand
subscribers, 10 to 20 s at a million, far too long for the campaign page. Up to
``LIVE_UP_TO`` subscribers it is counted on the spot; past that the page shows the last
count (and when it was made) from the cache, and a task counts afresh when it is missing
or older than ``FRESH_FOR``. Sending never uses these figures: the audience snapshot and
every batch ask ``selectors.sendable_consents`` themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from subscribers import selectors
from subscribers.models import Subscriber

LIVE_UP_TO = 20_000
FRESH_FOR = timedelta(minutes=5)
KEPT_FOR = 24 * 3600  # seconds: an old count, dated, beats none while a new one is made
QUEUED_FOR = 600  # seconds: at most one counting task per purpose queued in this time


@dataclass(frozen=True)
class Breakdown:
    counts: dict[str, int] | None  # None: being counted for the first time
    counted_at: datetime | None  # None: counted just now, for this page

    def __getitem__(self, key: str) -> int:
        return (self.counts or {})[key]


def _key(purpose_id: int) -> str:
    return f"audience-breakdown:{purpose_id}"


def breakdown_for_page(*, purpose_id: int) -> tuple[Breakdown, bool]:
    """The breakdown to show now, and whether a fresh count should be queued."""
    if Subscriber.objects.order_by()[: LIVE_UP_TO + 1].count() <= LIVE_UP_TO:
        return Breakdown(selectors.audience_breakdown(purpose_id=purpose_id), None), False
    stored: dict[str, Any] | None = cache.get(_key(purpose_id))
    if stored is None:
        return Breakdown(None, None), _claim(purpose_id)
    counted_at = stored["counted_at"]
    stale = timezone.now() - counted_at > FRESH_FOR
    return Breakdown(stored["counts"], counted_at), stale and _claim(purpose_id)


def _claim(purpose_id: int) -> bool:
    # Two staff members opening the page queue one count, not two.
    return bool(cache.add(f"{_key(purpose_id)}:queued", 1, QUEUED_FOR))


def breakdown_count(*, purpose_id: int) -> None:
    """Count the breakdown (slow at scale) and keep it for the pages."""
    counted_at = timezone.now()
    counts = selectors.audience_breakdown(purpose_id=purpose_id, now=counted_at)
    cache.set(_key(purpose_id), {"counts": counts, "counted_at": counted_at}, KEPT_FOR)
    cache.delete(f"{_key(purpose_id)}:queued")

"""Per-campaign, per-hour counters of what providers reported, added as events are processed.

Called by ``provider_events`` for a matched event with the delivery row locked, so two
events for one delivery cannot both count as its first. Opens and clicks count only for a
delivery that carried tracking: the report gives them as a share of trackable recipients.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

from marketing import events
from marketing.models import CampaignStat, Delivery, DeliveryEvent

Metric = CampaignStat.Metric
# Stages counted here on their first event per delivery; bounces and complaints come
# counted already (``provider_events`` decides what counts as one, for the guardrails too).
FIRST_EVENT = {
    events.DELIVERED: Metric.DELIVERED,
    events.OPENED: Metric.OPENED,
    events.CLICKED: Metric.CLICKED,
}
TRACKED_ONLY = {Metric.OPENED, Metric.CLICKED}


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def campaign_stat_add(*, campaign_id: int, metric: str, at: datetime, count: int = 1) -> None:
    """Add ``count`` to the campaign's ``metric`` in the hour of ``at`` (one upsert)."""
    table = CampaignStat._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (campaign_id, metric, hour, count) VALUES (%s, %s, %s, %s) "  # noqa: S608
            f"ON CONFLICT (campaign_id, metric, hour) DO UPDATE SET count = {table}.count + EXCLUDED.count",
            [campaign_id, metric, hour_of(at), count],
        )


def delivery_event_count(*, row: DeliveryEvent, delivery: Delivery, bounced: int, complained: int) -> None:
    """Count ``row`` in its campaign's hour, once per delivery and stage."""
    counted = [Metric.BOUNCED] * bounced + [Metric.COMPLAINED] * complained
    metric = FIRST_EVENT.get(row.event_type)
    if metric is not None and (delivery.tracked or metric not in TRACKED_ONLY):
        earlier = DeliveryEvent.objects.filter(
            delivery=delivery, event_type=row.event_type, processed_at__isnull=False
        ).exclude(pk=row.pk)
        if not earlier.exists():
            counted.append(metric)
    for name in counted:
        campaign_stat_add(campaign_id=delivery.campaign_id, metric=name, at=row.occurred_at)

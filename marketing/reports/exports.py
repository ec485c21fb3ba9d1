"""CSV of every report table: streamed row by row, safe to open in a spreadsheet, audited.

**Formula injection** (OWASP "CSV Injection"): a cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is run as a formula by Excel, LibreOffice and Google
Sheets; such a text cell gets a leading apostrophe, which they show as text. Numbers are
written as numbers (a negative count never occurs).

**Streaming**: ``StreamingHttpResponse`` over a generator, each line encoded as it is made;
the recipients table pages through the campaign's deliveries by id, so memory stays flat
however many there are.

**Who may download what**: aggregate tables need ``marketing.view_campaign`` (Marketers,
Compliance); the recipients with their outcome is personal data and needs
``marketing.export_recipients`` (Compliance). Each download is written to the staff audit
trail before its first byte: ``CampaignAction`` "export" for a campaign's tables, the
admin log for the dashboard's.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from marketing.models import Campaign, CampaignAction, Delivery, DeliveryEvent, ListHealthDay
from marketing.reports import campaign as campaign_report
from marketing.reports.health import Dashboard
from marketing.services import Actor, _audit

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
RECIPIENTS_PAGE = 2000


def cell(value: Any) -> Any:
    """One CSV cell: numbers as they are, dates in ISO 8601, text defused of formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


class _Line:
    """A file-like object whose ``write`` hands back what was written (Django's CSV streaming recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_response(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingHttpResponse:
    writer = csv.writer(_Line())

    def lines() -> Iterator[str]:
        yield "\ufeff"  # so Excel reads the file as UTF-8
        yield writer.writerow([cell(h) for h in header])
        for row in rows:
            yield writer.writerow([cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


# --- Audit --------------------------------------------------------------------------------


@transaction.atomic
def campaign_export_record(*, campaign_id: int, actor: Actor, table: str, personal: bool) -> None:
    """Note in the campaign's audit trail that ``actor`` downloaded one of its tables."""
    _audit(
        Campaign.objects.get(pk=campaign_id),
        CampaignAction.Action.EXPORT,
        actor,
        table=table,
        personal=personal,
    )


@transaction.atomic
def dashboard_export_record(*, actor: Any, table: str) -> None:
    """Note in the admin log that ``actor`` downloaded one of the dashboard's tables."""
    LogEntry.objects.create(
        user_id=actor.pk,
        content_type=ContentType.objects.get_for_model(ListHealthDay),
        object_id="",
        object_repr="List health",
        action_flag=CHANGE,
        change_message=f"Downloaded the list-health table “{table}” as CSV.",
    )


# --- Tables ---------------------------------------------------------------------------------


def funnel_rows(report: campaign_report.CampaignReport) -> tuple[list[str], list[list[Any]]]:
    header = ["stage", "count", "rate", "rate_of"]
    rows = [
        [s.label, s.count, "" if s.rate is None else round(s.rate, 6), s.base_label] for s in report.stages
    ]
    return header, rows


def timeline_rows(report: campaign_report.CampaignReport) -> tuple[list[str], list[list[Any]]]:
    timeline = report.timeline
    header = [f"{timeline.bucket}_start_utc", *campaign_report.TIMELINE_SERIES]
    rows = [
        [start, *(timeline.series[key][i] for key in campaign_report.TIMELINE_SERIES)]
        for i, start in enumerate(timeline.starts)
    ]
    return header, rows


RECIPIENT_HEADER = [
    "subscriber_id",
    "email",
    "status",
    "sent_at",
    "tracked",
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed_at",
    "error",
]
OUTCOME_EVENTS = {
    "delivered": ("delivered",),
    "bounced": ("bounced",),
    "complained": ("complained",),
    "opened": ("opened",),
    "clicked": ("clicked",),
}


def recipient_rows(campaign: Campaign) -> Iterator[list[Any]]:
    """Every recipient of ``campaign`` with what became of their message, page by page by id."""
    window = campaign_report.unsubscribe_window(campaign)
    gone = campaign_report.unsubscribers(campaign, window) if window else {}
    after = 0
    while True:
        page = list(
            Delivery.objects.filter(campaign_id=campaign.pk, pk__gt=after)
            .order_by("pk")
            .values_list("pk", "subscriber_id", "subscriber__email", "status", "sent_at", "tracked", "error")[
                :RECIPIENTS_PAGE
            ]
        )
        if not page:
            return
        after = page[-1][0]
        seen: dict[int, set[str]] = {}
        reported = DeliveryEvent.objects.filter(delivery_id__in=[row[0] for row in page], matched=True)
        for delivery_id, kind in reported.values_list("delivery_id", "event_type").distinct():
            seen.setdefault(delivery_id, set()).add(kind)
        for pk, subscriber_id, email, status, sent_at, tracked, error in page:
            kinds = seen.get(pk, set())
            yield [
                subscriber_id,
                email or "(erased)",
                status,
                sent_at,
                tracked,
                *(bool(kinds & set(names)) for names in OUTCOME_EVENTS.values()),
                gone.get(subscriber_id),
                error,
            ]


def consents_rows(board: Dashboard) -> tuple[list[str], list[list[Any]]]:
    labels = list(board.active)
    rows = [[day, *(board.active[label][i] for label in labels)] for i, day in enumerate(board.days)]
    return ["day", *(f"active: {label}" for label in labels)], rows


def activity_rows(board: Dashboard) -> tuple[list[str], list[list[Any]]]:
    header = [
        "day",
        "new_subscribers",
        "consent_requests",
        "confirmations",
        "withdrawals",
        "suppressions",
        "subscribed",
    ]
    rows = [
        [a.day, a.new_subscribers, a.requested, a.confirmed, a.withdrawn, a.suppressed, a.subscribed]
        for a in board.activity
    ]
    return header, rows


def complaint_rows(board: Dashboard) -> tuple[list[str], list[list[Any]]]:
    header = [
        "campaign_id",
        "campaign",
        "started_at",
        "sent",
        "complained",
        "complaint_rate",
        "at_or_over_line",
    ]
    rows = [
        [
            c.campaign.pk,
            c.campaign.name,
            c.campaign.started_at,
            c.campaign.sent_count,
            c.campaign.complained_count,
            round(c.rate, 6),
            c.over_line,
        ]
        for c in board.complaints
    ]
    return header, rows


def filename(*parts: object) -> str:
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    return "-".join(str(p) for p in parts) + f"-{stamp}.csv"

"""Admin pages of the reports: a campaign's report, the list-health dashboard, their CSVs.

Thin: check the permission, read a selector, draw the charts, respond. Mounted by
``CampaignAdmin.get_urls`` (campaign pages) and ``PlatformAdminSite.get_urls`` (dashboard).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone

from marketing.models import Campaign
from marketing.reports import charts, exports
from marketing.reports.campaign import TIMELINE_SERIES, CampaignReport, campaign_report
from marketing.reports.health import Dashboard, list_health

VIEW_PERMISSION = "marketing.view_campaign"
PERSONAL_PERMISSION = "marketing.export_recipients"
FUNNEL_COLORS = {"bounced": "#D55E00", "complained": "#D55E00", "unsubscribed": "#E69F00"}


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def may_see_reports(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_PERMISSION))


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}" if rate >= 0.01 or rate == 0 else f"{rate:.2%}"


# --- A campaign's report ------------------------------------------------------------------


def campaign_report_view(request: HttpRequest, site: AdminSite, pk: int) -> HttpResponse:
    _require(request, VIEW_PERMISSION)
    campaign = get_object_or_404(Campaign.objects.select_related("purpose"), pk=pk)
    report = campaign_report(campaign)
    context = {
        **site.each_context(request),
        "title": f"Report: {campaign}",
        "opts": Campaign._meta,
        "original": campaign,
        "report": report,
        "stages": [(s, _percent(s.rate)) for s in report.stages],
        "funnel_chart": _funnel_chart(report),
        "timeline_chart": _timeline_chart(report),
        "timeline_rows": exports.timeline_rows(report)[1],
        "series": TIMELINE_SERIES,
        "can_export_recipients": request.user.has_perm(PERSONAL_PERMISSION),
        "rollup_every": int(settings.CELERY_BEAT_SCHEDULE["refresh-reports"]["schedule"]),
    }
    return TemplateResponse(request, "admin/reports/campaign.html", context)


def _funnel_chart(report: CampaignReport) -> Any:
    bars = [
        charts.Bar(
            label=s.label,
            value=s.count,
            text=f"{s.count:,}" + ("" if s.key == "targeted" else f" ({_percent(s.rate)} of {s.base_label})"),
            color=FUNNEL_COLORS.get(
                s.key, charts.PALETTE[2] if s.key in ("opened", "clicked") else charts.PALETTE[0]
            ),
        )
        for s in report.stages
    ]
    return charts.bar_chart(
        title="Funnel",
        desc=", ".join(f"{s.label}: {s.count}" for s in report.stages)
        + ". Opened and clicked are among trackable recipients only.",
        bars=bars,
        x_title="Recipients",
    )


def _timeline_chart(report: CampaignReport) -> Any:
    timeline = report.timeline
    fmt = "%d %b %H:%M" if timeline.bucket == "hour" else "%d %b"
    return charts.line_chart(
        title=f"What happened, per {timeline.bucket} since sending started",
        desc=f"Messages sent and events reported per {timeline.bucket} (UTC): "
        + ", ".join(f"{key} {sum(timeline.series[key])}" for key in TIMELINE_SERIES),
        x_labels=[timezone.localtime(s).strftime(fmt) for s in timeline.starts],
        series=[charts.Series(key.capitalize(), timeline.series[key]) for key in TIMELINE_SERIES],
        x_title=f"{timeline.bucket.capitalize()} ({timezone.get_current_timezone_name()})",
        y_title=f"Recipients per {timeline.bucket}",
    )


def campaign_csv_view(request: HttpRequest, pk: int, table: str) -> HttpResponseBase:
    personal = table == "recipients"
    _require(request, PERSONAL_PERMISSION if personal else VIEW_PERMISSION)
    campaign = get_object_or_404(Campaign.objects.select_related("purpose"), pk=pk)
    if personal:
        header, rows = exports.RECIPIENT_HEADER, exports.recipient_rows(campaign)
    elif table in ("funnel", "timeline"):
        build = exports.funnel_rows if table == "funnel" else exports.timeline_rows
        header, rows = build(campaign_report(campaign))  # type: ignore[assignment]
    else:
        raise Http404(f"No campaign table {table!r}.")
    exports.campaign_export_record(
        campaign_id=campaign.pk, actor=request.user, table=table, personal=personal
    )
    return exports.csv_response(exports.filename("campaign", campaign.pk, table), header, rows)


# --- List health ----------------------------------------------------------------------------


def list_health_view(request: HttpRequest, site: AdminSite) -> HttpResponse:
    _require(request, VIEW_PERMISSION)
    board = list_health()
    context = {
        **site.each_context(request),
        "title": "List health",
        "board": board,
        "consents_chart": _consents_chart(board),
        "activity_chart": _activity_chart(board),
        "complaints_chart": _complaints_chart(board),
        "consent_table": exports.consents_rows(board),
        "complaint_line_text": f"{settings.REPORT_COMPLAINT_LINE:.1%}",
        "rollup_every": int(settings.CELERY_BEAT_SCHEDULE["refresh-reports"]["schedule"]),
    }
    return TemplateResponse(request, "admin/reports/list_health.html", context)


def _day_labels(board: Dashboard) -> list[str]:
    return [day.strftime("%d %b") for day in board.days]


def _consents_chart(board: Dashboard) -> Any:
    series = [charts.Series(label, values) for label, values in board.active.items()]
    subscribed = [a.subscribed for a in board.activity]
    if any(v is not None for v in subscribed):
        series.append(charts.Series("Subscribers (any)", subscribed))
    return charts.line_chart(
        title="Active consents per purpose",
        desc="Active consents at the end of each day, per purpose: "
        + ", ".join(f"{s.name} {next((v for v in reversed(s.values) if v is not None), 0)}" for s in series),
        x_labels=_day_labels(board),
        series=series,
        x_title="Day",
        y_title="Active consents",
    )


def _activity_chart(board: Dashboard) -> Any:
    fields = (
        ("Consent requests", "requested"),
        ("Confirmations", "confirmed"),
        ("Withdrawals", "withdrawn"),
        ("Suppressions", "suppressed"),
    )
    series = [charts.Series(name, [getattr(a, attr) for a in board.activity]) for name, attr in fields]
    return charts.line_chart(
        title="Consents requested, confirmed and withdrawn, and suppressions, per day",
        desc="Counted per purpose (one person asking for two kinds of mail makes two requests). "
        "Totals over the period: " + ", ".join(f"{s.name} {sum(v or 0 for v in s.values)}" for s in series),
        x_labels=_day_labels(board),
        series=series,
        x_title="Day",
        y_title="Per day",
    )


def _complaints_chart(board: Dashboard) -> Any:
    line, guard = settings.REPORT_COMPLAINT_LINE, settings.GUARDRAIL_COMPLAINT_RATE
    bars = [
        charts.Bar(
            label=c.campaign.name,
            value=c.rate,
            text=f"{c.rate:.2%} ({c.campaign.complained_count} of {c.campaign.sent_count:,})",
            color="#D55E00" if c.over_line else "#E69F00" if c.over_guardrail else charts.PALETTE[0],
        )
        for c in board.complaints
    ]
    over = sum(c.over_line for c in board.complaints)
    return charts.bar_chart(
        title="Spam complaint rate per campaign",
        desc=f"{over} of {len(bars)} recent campaigns at or over the {line:.1%} line. "
        + ", ".join(f"{c.campaign.name} {c.rate:.2%}" for c in board.complaints),
        bars=bars,
        x_title="Complaints per message sent",
        rules=[charts.Rule(guard, f"pause {guard:.1%}", "#E69F00"), charts.Rule(line, f"limit {line:.1%}")],
        percent=True,
    )


def list_health_csv_view(request: HttpRequest, table: str) -> HttpResponseBase:
    _require(request, VIEW_PERMISSION)
    builders = {
        "consents": exports.consents_rows,
        "activity": exports.activity_rows,
        "complaints": exports.complaint_rows,
    }
    if table not in builders:
        raise Http404(f"No list-health table {table!r}.")
    header, rows = builders[table](list_health())
    exports.dashboard_export_record(actor=request.user, table=table)
    return exports.csv_response(exports.filename("list-health", table), header, rows)

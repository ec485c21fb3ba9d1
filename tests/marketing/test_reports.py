"""Reports: a campaign's funnel and timeline, the list-health dashboard, their CSVs, who may
see what, and pages whose query count does not grow with the audience."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketing import services, tracking
from marketing.models import Campaign, CampaignAction, CampaignStat, Delivery, ListHealthDay
from marketing.reports import charts, exports, rollup
from marketing.reports.campaign import campaign_report
from marketing.reports.health import list_health
from subscribers import services as subscriber_services
from subscribers.models import Channel, Subscriber, Suppression
from tests.factories import StaffFactory
from tests.marketing import provider_payloads as p
from tests.marketing.conftest import WEB, sign_up

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("webhooks"),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]
SITE = "https://news.example.com"


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = SITE
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.GUARDRAIL_MIN_SENT = 1000  # these tests count; the guardrails have their own


def staff(group: str | None, name: str) -> Any:
    user: Any = StaffFactory(username=name)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def marketer(seeded):
    return staff("Marketers", "mia")


@pytest.fixture
def compliance(seeded):
    return staff("Compliance", "cleo")


@pytest.fixture
def readers(consent_texts):
    news, track = consent_texts["newsletter"], consent_texts["email-tracking"]
    return {
        "ada": sign_up("ada@example.org", news, track),
        "bob": sign_up("bob@example.org", news, track),
        "cy": sign_up("cy@example.org", news),
        "di": sign_up("di@example.org", news),
    }


@pytest.fixture
def campaign(consent_texts, readers):
    """Sent to four readers; Ada's and Bob's messages carried tracking (they agreed)."""
    campaign = services.campaign_create(
        actor=None,
        name="March",
        purpose=consent_texts["newsletter"].purpose,
        subject="News",
        body="Read [the article](https://example.com/a) or [the other](https://example.org/b).",
    )
    services.campaign_send(campaign_id=campaign.pk, actor=None)  # runs eagerly
    tracking.deliveries_mark_tracked(
        delivery_ids=Delivery.objects.filter(
            campaign=campaign, subscriber__in=[readers["ada"], readers["bob"]]
        ).values_list("pk", flat=True)
    )
    return Campaign.objects.get(pk=campaign.pk)


def delivery(campaign, subscriber) -> Delivery:
    return Delivery.objects.select_related("subscriber").get(campaign=campaign, subscriber=subscriber)


def pm(d: Delivery) -> dict:
    return {"email": d.subscriber.email, "message_id": d.provider_message_id, "meta": p.metadata(d)}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def reported(client, campaign, readers):
    """What the provider, the recipients and the tracking endpoints reported, an hour apart."""
    start = campaign.started_at
    d = {name: delivery(campaign, s) for name, s in readers.items()}
    for name in ("ada", "bob", "cy"):
        at = iso(start + timedelta(hours=1))
        assert p.post(client, "postmark", p.postmark_delivery(**pm(d[name]), at=at)).status_code == 200
    # Delivered twice (a provider retry with another time): counted once.
    again = p.postmark_delivery(**pm(d["ada"]), at=iso(start + timedelta(hours=2)))
    assert p.post(client, "postmark", again).status_code == 200
    bounce, complaint = p.postmark_bounce(**pm(d["di"])), p.postmark_spam_complaint(**pm(d["cy"]))
    for payload in (bounce, complaint):
        payload["BouncedAt"] = iso(start + timedelta(hours=1))
        assert p.post(client, "postmark", payload).status_code == 200
    base = {name: tracking.url_maker()(d[name].pk).removeprefix(SITE) for name in ("ada", "bob")}
    for _ in range(2):
        assert client.get(base["ada"] + tracking.OPEN_SUFFIX).status_code == 200  # opened twice: once
    assert client.get(base["bob"] + "/1/").status_code == 302
    assert client.get(base["bob"] + "/2/").status_code == 302  # two links: one clicker
    subscriber_services.consent_withdraw(
        subscriber=readers["bob"], purpose=campaign.purpose, channel=Channel.EMAIL, evidence=WEB
    )
    rollup.campaign_stats_refresh()
    return d


def funnel(report) -> dict[str, tuple[int, float | None]]:
    return {s.key: (s.count, s.rate) for s in report.stages}


def test_the_funnel_counts_each_recipient_once_per_stage_and_opens_among_the_trackable(campaign, reported):
    campaign.refresh_from_db()
    assert funnel(campaign_report(campaign)) == {
        "targeted": (4, 1.0),
        "sent": (4, 1.0),
        "delivered": (3, 0.75),
        "bounced": (1, 0.25),
        "complained": (1, 0.25),
        # Cy's complaint withdrew the purpose, and Bob withdrew it himself.
        "unsubscribed": (2, 0.5),
        "trackable": (2, 0.5),
        "opened": (1, 0.5),  # of the two trackable
        "clicked": (1, 0.5),
    }


def test_the_timeline_puts_each_event_in_its_hour(campaign, reported):
    campaign.refresh_from_db()
    timeline = campaign_report(campaign).timeline
    first = campaign.started_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    assert timeline.bucket == "hour"
    assert timeline.starts[0] <= first
    by_hour = dict(zip(timeline.starts, timeline.series["delivered"], strict=True))
    assert by_hour[first + timedelta(hours=1)] == 3
    assert by_hour.get(first + timedelta(hours=2), 0) == 0  # Ada's second report is not a second delivery
    assert sum(timeline.series["sent"]) == 4
    assert sum(timeline.series["opened"]) == 1
    assert sum(timeline.series["bounced"]) == sum(timeline.series["complained"]) == 1


def test_sent_and_trackable_are_rolled_up_only_when_sent_count_moved(campaign):
    assert rollup.campaign_sends_refresh() == [campaign.pk]
    stats = CampaignStat.objects.filter(campaign=campaign)
    assert {(s.metric, s.count) for s in stats} == {("sent", 4), ("tracked", 2)}
    assert rollup.campaign_sends_refresh() == []  # nothing moved: no work


def test_the_report_page_shows_charts_with_their_numbers(client, marketer, campaign, reported):
    client.force_login(marketer)
    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/report/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg" class="report-chart"') == 2
    assert '<title id="chart' in html and "Funnel" in html
    assert '<th scope="row">Opened</th><td>1</td><td>50.0% of trackable</td>' in html
    assert "Download recipients" not in html  # personal data: not for Marketers
    change = client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert f'href="/admin/marketing/campaign/{campaign.pk}/report/"' in change


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    return list(csv.reader(io.StringIO(body)))


def test_the_funnel_csv_holds_the_pages_numbers_and_the_download_is_audited(
    client, marketer, campaign, reported
):
    client.force_login(marketer)
    response = client.get(f"/admin/marketing/campaign/{campaign.pk}/report/funnel.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="campaign-{campaign.pk}-funnel-')
    rows = read_csv(response)
    assert rows[0] == ["stage", "count", "rate", "rate_of"]
    assert ["Opened", "1", "0.5", "trackable"] in rows
    assert ["Delivered", "3", "0.75", "sent"] in rows
    action = CampaignAction.objects.filter(campaign=campaign, action="export").get()
    assert (action.actor, action.actor_label, action.detail) == (
        marketer,
        "mia",
        {"table": "funnel", "personal": False},
    )


def test_recipients_with_their_outcome_are_for_compliance_only(
    client, marketer, compliance, campaign, reported
):
    url = f"/admin/marketing/campaign/{campaign.pk}/report/recipients.csv"
    client.force_login(marketer)
    assert client.get(url).status_code == 403
    assert not CampaignAction.objects.filter(action="export").exists()

    client.force_login(compliance)
    response = client.get(url)
    assert response.status_code == 200
    rows = read_csv(response)
    assert rows[0] == exports.RECIPIENT_HEADER
    by_email = {row[1]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert set(by_email) == {"ada@example.org", "bob@example.org", "cy@example.org", "di@example.org"}
    outcome = ("tracked", "delivered", "bounced", "complained", "opened", "clicked")
    assert {k: by_email["ada@example.org"][k] for k in outcome} == dict(
        zip(outcome, ["yes", "yes", "no", "no", "yes", "no"], strict=True)
    )
    assert by_email["di@example.org"]["bounced"] == "yes"
    assert by_email["cy@example.org"]["complained"] == "yes" and by_email["cy@example.org"]["unsubscribed_at"]
    assert by_email["bob@example.org"]["clicked"] == "yes" and by_email["bob@example.org"]["unsubscribed_at"]
    assert by_email["ada@example.org"]["unsubscribed_at"] == ""
    action = CampaignAction.objects.get(action="export")
    assert (action.actor, action.detail) == (compliance, {"table": "recipients", "personal": True})


def test_staff_without_campaign_access_see_no_report(client, seeded, campaign):
    client.force_login(staff(None, "nobody"))
    assert client.get(f"/admin/marketing/campaign/{campaign.pk}/report/").status_code == 403
    assert client.get("/admin/reports/list-health/").status_code == 403
    assert client.get("/admin/reports/list-health/activity.csv").status_code == 403
    assert "List health" not in client.get("/admin/").content.decode()


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_that_a_spreadsheet_would_run_as_a_formula_is_made_text(start):
    assert (
        exports.cell(f'{start}HYPERLINK("http://evil.example")')
        == f'\'{start}HYPERLINK("http://evil.example")'
    )
    assert exports.cell(f"a{start}b") == f"a{start}b"
    assert exports.cell(-3) == -3  # numbers stay numbers


def test_a_campaign_name_cannot_smuggle_a_formula_into_the_complaints_csv(client, marketer, campaign):
    Campaign.objects.filter(pk=campaign.pk).update(name='=HYPERLINK("http://evil.example","x")')
    client.force_login(marketer)
    rows = read_csv(client.get("/admin/reports/list-health/complaints.csv"))
    assert rows[1][1] == '\'=HYPERLINK("http://evil.example","x")'


# --- List health --------------------------------------------------------------------------


def at_time(monkeypatch, moment):
    monkeypatch.setattr(timezone, "now", lambda: moment)


def test_the_dashboard_rolls_up_each_day_from_the_ledger(client, marketer, consent_texts, monkeypatch):
    news = consent_texts["newsletter"]
    now = timezone.now()
    two_days_ago, yesterday = now - timedelta(days=2), now - timedelta(days=1)
    with monkeypatch.context() as m:
        at_time(m, two_days_ago)
        early = [sign_up(f"early{n}@example.org", news) for n in range(3)]
        sign_up("pending@example.org", news, confirm=False)
        at_time(m, yesterday)
        sign_up("late@example.org", news)
        subscriber_services.consent_withdraw(
            subscriber=early[0], purpose=news.purpose, channel=Channel.EMAIL, evidence=WEB
        )
    # The model's default captured the real clock: date the rows as the ledger is.
    Subscriber.objects.exclude(email="late@example.org").update(created_at=two_days_ago)
    Subscriber.objects.filter(email="late@example.org").update(created_at=yesterday)
    Suppression.objects.create(email_hash="x" * 64, reason=Suppression.Reason.MANUAL)

    rollup.list_health_refresh()
    days = [timezone.localdate(t) for t in (two_days_ago, yesterday, now)]
    rows = {
        row.day: row
        for row in ListHealthDay.objects.filter(purpose=news.purpose, channel="email").order_by("day")
    }
    assert list(rows) == days
    assert [(r.requested, r.confirmed, r.withdrawn) for r in rows.values()] == [
        (4, 3, 0),
        (1, 1, 1),
        (0, 0, 0),
    ]
    assert [r.active for r in rows.values()] == [3, 3, 3]  # now 3 active; walked back through the days
    wide = {row.day: row for row in ListHealthDay.objects.filter(purpose=None)}
    assert [wide[d].new_subscribers for d in days] == [4, 1, 0]
    assert [wide[d].suppressed for d in days] == [0, 0, 1]
    assert wide[days[-1]].active == Subscriber.objects.filter(consents__status="active").distinct().count()

    board = list_health()
    assert board.days == days
    assert board.active[news.purpose.name] == [3, 3, 3]
    assert [(a.requested, a.confirmed, a.withdrawn, a.suppressed) for a in board.activity] == [
        (4, 3, 0, 0),
        (1, 1, 1, 0),
        (0, 0, 0, 1),
    ]
    client.force_login(marketer)
    page = client.get("/admin/reports/list-health/")
    assert page.status_code == 200
    assert page.content.decode().count('class="report-chart"') == 3
    assert 'href="/admin/reports/list-health/"' in client.get("/admin/").content.decode()

    # Requests are per purpose, and the page says so rather than calling them sign-ups.
    assert "Consent requests" in page.content.decode() and "Sign-ups" not in page.content.decode()
    rows_csv = read_csv(client.get("/admin/reports/list-health/activity.csv"))
    assert rows_csv[0][:3] == ["day", "new_subscribers", "consent_requests"]
    assert rows_csv[1][:6] == [days[0].isoformat(), "4", "4", "3", "0", "0"]
    entry = LogEntry.objects.get(user=marketer)
    assert entry.change_message == "Downloaded the list-health table “activity” as CSV."


def test_a_second_rollup_rebuilds_only_yesterday_and_today(consent_texts, monkeypatch):
    news = consent_texts["newsletter"]
    with monkeypatch.context() as m:
        at_time(m, timezone.now() - timedelta(days=5))
        sign_up("old@example.org", news)
    rollup.list_health_refresh()
    old = ListHealthDay.objects.filter(
        day=timezone.localdate() - timedelta(days=5), purpose=news.purpose, channel="email"
    ).get()
    sign_up("new@example.org", news)
    rollup.list_health_refresh()
    assert ListHealthDay.objects.filter(pk=old.pk).exists()  # untouched
    today = ListHealthDay.objects.get(day=timezone.localdate(), purpose=news.purpose, channel="email")
    assert (today.confirmed, today.active) == (1, 2)


def test_complaint_rates_are_drawn_against_the_line(client, marketer, campaign, reported):
    client.force_login(marketer)
    html = client.get("/admin/reports/list-health/").content.decode()
    assert "25.00% (1 of 4)" in html  # the bar's label
    assert "limit 0.3%" in html and "pause 0.1%" in html
    assert 'class="report-over"' in html


# --- Cost independent of the audience -------------------------------------------------------


def grow(campaign: Campaign, extra: int) -> None:
    """Add recipients sent, delivered and opened, as dispatch and provider events would."""
    start = Subscriber.objects.count()
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"bulk{start + n}@example.org", email_hash=f"{start + n:064d}") for n in range(extra)
    )
    now = timezone.now()
    Delivery.objects.bulk_create(
        Delivery(campaign=campaign, subscriber=s, status="sent", sent_at=now, tracked=True)
        for s in subscribers
    )
    Campaign.objects.filter(pk=campaign.pk).update(
        recipients_count=campaign.recipients_count + extra, sent_count=campaign.sent_count + extra
    )
    rollup.campaign_sends_refresh()


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_report_pages_cost_the_same_queries_for_10_or_200_recipients(
    client, marketer, campaign, django_assert_max_num_queries
):
    client.force_login(marketer)
    grow(campaign, 6)  # 10 recipients
    rollup.list_health_refresh()
    pages = [f"/admin/marketing/campaign/{campaign.pk}/report/", "/admin/reports/list-health/"]
    small = {url: queries(client, url) for url in pages}
    grow(Campaign.objects.get(pk=campaign.pk), 190)  # 200
    rollup.list_health_refresh()
    assert Delivery.objects.filter(campaign=campaign).count() == 200
    for url in pages:
        with django_assert_max_num_queries(small[url]):
            assert client.get(url).status_code == 200


def test_a_withdrawal_counts_for_the_last_campaign_the_reader_got(campaign, readers, consent_texts):
    later = services.campaign_create(
        actor=None, name="April", purpose=consent_texts["newsletter"].purpose, subject="April", body="Hi"
    )
    services.campaign_send(campaign_id=later.pk, actor=None)  # runs eagerly
    subscriber_services.consent_withdraw(
        subscriber=readers["ada"], purpose=campaign.purpose, channel=Channel.EMAIL, evidence=WEB
    )
    rollup.campaign_stats_refresh()
    first, second = (campaign_report(Campaign.objects.get(pk=c.pk)) for c in (campaign, later))
    assert (first.stage("unsubscribed").count, second.stage("unsubscribed").count) == (0, 1)


def test_a_long_series_name_gives_way_in_the_legend_but_its_value_stays():
    svg = str(
        charts.line_chart(
            title="t",
            desc="d",
            x_labels=["1 Dec", "2 Dec"],
            series=[charts.Series("Product information (postal)", [120, 1234])],
            x_title="Day",
            y_title="n",
        )
    )
    legend = re.search(r"<title>Product information \(postal\)</title>([^<]*)</text>", svg)
    assert legend, svg
    assert legend.group(1).endswith(": 1,234")
    assert legend.group(1).startswith("Product information (p") and "…" in legend.group(1)


def test_a_limit_line_never_strikes_through_a_bars_value():
    svg = str(
        charts.bar_chart(
            title="t",
            desc="d",
            bars=[charts.Bar(label="Winter sale", value=0.0, text="0.00% (0 of 303)", color="#000")],
            x_title="rate",
            rules=[charts.Rule(0.001, "pause 0.1%", "#E69F00")],
            percent=True,
        )
    )
    # The value is drawn after the rule, on a halo of the background colour.
    assert svg.index("pause 0.1%") < svg.index("0.00% (0 of 303)")
    assert re.search(r'<text[^>]*paint-order="stroke"[^>]*>0\.00% \(0 of 303\)</text>', svg)

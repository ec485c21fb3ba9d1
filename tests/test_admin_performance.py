"""The admin stays usable at a million rows: no per-row queries, no full counts, indexed search.

Timings are the bench's business (``make bench``); these tests pin what makes them: the
number of queries a page runs does not grow with its rows, the paginator stops counting
at ``EXACT_UP_TO`` and says "about", searches use an index, and the campaign page does not
count a large audience while staff wait.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import admin_paginator
from marketing.models import Campaign, Delivery, DeliveryEvent
from subscribers import audience_counts, ledger, selectors
from subscribers.ledger import Evidence
from subscribers.models import ConsentEvent, ConsentText, Purpose, Subscriber, Suppression
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

LISTS = [
    "/admin/subscribers/subscriber/",
    "/admin/subscribers/consentevent/",
    "/admin/subscribers/consentevidence/",
    "/admin/subscribers/suppression/",
    "/admin/marketing/delivery/",
    "/admin/marketing/deliveryevent/",
]


@pytest.fixture
def superuser(seeded):
    return StaffFactory(username="root", is_superuser=True)


@pytest.fixture
def marketer(seeded):
    user = StaffFactory(username="mia")
    user.groups.add(Group.objects.get(name="Marketers"))
    return user


def grow(count: int, settings, tmp_path) -> None:
    """``count`` more subscribers with confirmed consents (seed_demo's bulk path), and as
    many deliveries, provider events and suppressions."""
    settings.DEBUG, settings.VAR_DIR = True, tmp_path
    call_command("seed_demo", subscribers=count, stdout=open("/dev/null", "w"))  # noqa: SIM115
    purpose = Purpose.objects.get(slug="newsletter")
    campaign, _ = Campaign.objects.get_or_create(
        name="sent", defaults={"purpose": purpose, "subject": "Hi", "body": "Hi", "status": "sent"}
    )
    fresh = Subscriber.objects.exclude(deliveries__isnull=False).filter(email__isnull=False)[:count]
    now = timezone.now()
    deliveries = Delivery.objects.bulk_create(
        Delivery(campaign=campaign, subscriber=s, status="sent", sent_at=now, provider_message_id=f"m{s.pk}")
        for s in fresh
    )
    DeliveryEvent.objects.bulk_create(
        DeliveryEvent(
            delivery=d,
            campaign=campaign,
            esp_name="Mailgun",
            event_type="delivered",
            occurred_at=now,
            dedupe_key=f"d{d.pk}",
            matched=True,
        )
        for d in deliveries
    )
    Suppression.objects.bulk_create(
        Suppression(
            email_hash=d.subscriber.email_hash, reason="hard_bounce", created_at=now - timedelta(days=1)
        )
        for d in deliveries
    )


def queries_per_page(client, user) -> dict[str, int]:
    client.force_login(user)
    counts = {}
    for path in LISTS:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        if response.status_code == 403:  # the evidence is Compliance's
            continue
        assert response.status_code == 200, path
        counts[path] = len(captured.captured_queries)
    return counts


@pytest.mark.parametrize("who", ["superuser", "marketer"])
def test_a_list_runs_as_many_queries_for_100_rows_as_for_10(client, request, who, settings, tmp_path):
    user = request.getfixturevalue(who)
    grow(10, settings, tmp_path)
    with_10 = queries_per_page(client, user)
    grow(90, settings, tmp_path)
    assert Subscriber.objects.count() >= 100
    assert queries_per_page(client, user) == with_10


def test_the_subscriber_page_runs_as_many_queries_for_many_events(client, superuser, settings, tmp_path):
    grow(2, settings, tmp_path)
    subscriber = Subscriber.objects.order_by("pk").first()
    client.force_login(superuser)
    url = f"/admin/subscribers/subscriber/{subscriber.pk}/change/"
    client.get(url)  # the first request after logging in also touches the session
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    text = ConsentText.objects.filter(purpose__slug="newsletter").first()
    entry = ledger.Entry(
        purpose=text.purpose, channel="email", kind=ConsentEvent.Kind.FREQUENCY_CHANGED, consent_text=text
    )
    with transaction.atomic():
        locked = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        ledger.append_many(locked, [entry] * 20, evidence=Evidence(source=ConsentEvent.Source.ADMIN))
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_past_the_exact_limit_the_list_says_about(client, superuser, settings, tmp_path, monkeypatch):
    grow(12, settings, tmp_path)
    client.force_login(superuser)
    monkeypatch.setattr(admin_paginator, "EXACT_UP_TO", 5)
    with CaptureQueriesContext(connection) as captured:
        page = client.get("/admin/subscribers/subscriber/")
    html = page.content.decode()
    assert page.context["cl"].paginator.estimated
    assert "about " in html
    assert not any(
        q["sql"].startswith('SELECT COUNT(*) AS "__count" FROM "subscribers_subscriber"') for q in captured
    )
    assert any("LIMIT 6" in q["sql"] for q in captured)  # counted up to the limit, no further
    assert len(page.context["cl"].result_list) == Subscriber.objects.count()  # all still listed


def test_below_the_limit_the_count_is_exact(client, superuser, settings, tmp_path):
    grow(12, settings, tmp_path)
    client.force_login(superuser)
    page = client.get("/admin/subscribers/subscriber/")
    cl = page.context["cl"]
    assert not cl.paginator.estimated
    assert cl.result_count == Subscriber.objects.count()
    assert "about " not in page.content.decode().split('class="paginator"')[1]


@pytest.mark.parametrize("typed", ["first", "upper", "number", "hash"])
def test_subscriber_search_finds_one_by_address_number_or_hash(client, superuser, settings, tmp_path, typed):
    grow(5, settings, tmp_path)
    target = Subscriber.objects.order_by("pk")[2]
    term = {
        "first": target.email,
        "upper": target.email.upper(),
        "number": str(target.pk),
        "hash": target.email_hash,
    }[typed]
    client.force_login(superuser)
    page = client.get("/admin/subscribers/subscriber/", {"q": term})
    assert [s.pk for s in page.context["cl"].result_list] == [target.pk]


def test_address_lookups_use_the_lower_email_index(seeded):
    Subscriber.objects.create(email="Ada@Example.org", email_hash="x")
    query = selectors.subscribers_with_address("ada@EXAMPLE.org")
    assert query.get().email == "Ada@Example.org"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "subscriber_email_ci_unique" in plan


def test_the_campaign_page_counts_a_large_audience_in_the_background(
    client, marketer, settings, tmp_path, monkeypatch
):
    grow(6, settings, tmp_path)
    purpose = Purpose.objects.get(slug="newsletter")
    draft = Campaign.objects.create(name="draft", purpose=purpose, subject="Hi", body="Hi")
    monkeypatch.setattr(audience_counts, "LIVE_UP_TO", 3)
    counted = []
    real_count = audience_counts.breakdown_count
    monkeypatch.setattr(
        audience_counts, "breakdown_count", lambda **kw: counted.append(kw) or real_count(**kw)
    )
    client.force_login(marketer)
    url = f"/admin/marketing/campaign/{draft.pk}/change/"
    first = client.get(url).content.decode()
    # Celery runs eagerly in these tests: the count queued by the first view is done by now.
    assert "Being counted" in first
    assert counted == [{"purpose_id": purpose.pk}]
    second = client.get(url).content.decode()
    assert "as counted at" in second
    assert "eligible: will receive it" in second
    assert (
        f"<strong>{selectors.audience_breakdown(purpose_id=purpose.pk)['eligible']}</strong> eligible"
        in second
    )
    assert len(counted) == 1  # fresh for a while: no second count

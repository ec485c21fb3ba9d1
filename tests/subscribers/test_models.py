"""Model behaviour that must agree with its SQL form: ``is_open`` and ``objects.open()``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from subscribers.models import ConfirmationRequest, EmailChangeRequest
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
# Each way a request can stand at NOW: when its link ends, and whether it was confirmed or
# closed (expired by the sweep, or cancelled) at NOW.
STATES = {
    "waiting": (NOW + timedelta(days=7), None),
    "a second left": (NOW + SECOND, None),
    "ends this instant": (NOW, None),
    "ended, not yet closed by the sweep": (NOW - SECOND, None),
    "confirmed": (NOW + timedelta(days=7), "confirmed"),
    "closed early": (NOW + timedelta(days=7), "closed"),
    "closed and ended": (NOW - timedelta(days=1), "closed"),
}
OPEN = {"waiting", "a second left"}


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    return NOW


def test_confirmation_request_is_open_agrees_with_objects_open(now):
    subscriber = SubscriberFactory()
    fields = {"confirmed": "confirmed_at", "closed": "expired_at"}
    made = {
        name: ConfirmationRequest.objects.create(
            subscriber=subscriber, expires_at=expires_at, **({fields[end]: NOW} if end else {})
        )
        for name, (expires_at, end) in STATES.items()
    }

    in_sql = set(ConfirmationRequest.objects.open(now).values_list("pk", flat=True))
    assert in_sql == set(ConfirmationRequest.objects.open().values_list("pk", flat=True))
    assert in_sql == {request.pk for request in made.values() if request.is_open}
    assert in_sql == {made[name].pk for name in OPEN}


def test_email_change_request_is_open_agrees_with_objects_open(now):
    subscriber = SubscriberFactory()
    fields = {"confirmed": "confirmed_at", "closed": "cancelled_at"}
    made = {
        name: EmailChangeRequest.objects.create(
            subscriber=subscriber,
            new_email=f"new.{len(name)}@example.org",
            expires_at=expires_at,
            **({fields[end]: NOW} if end else {}),
        )
        for name, (expires_at, end) in STATES.items()
    }

    in_sql = set(EmailChangeRequest.objects.open(now).values_list("pk", flat=True))
    assert in_sql == set(EmailChangeRequest.objects.open().values_list("pk", flat=True))
    assert in_sql == {change.pk for change in made.values() if change.is_open}
    assert in_sql == {made[name].pk for name in OPEN}

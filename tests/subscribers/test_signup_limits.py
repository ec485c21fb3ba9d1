"""Anyone can type an address on the signup page: its owner's inbox is not theirs to flood."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from subscribers.models import ConfirmationRequest, ConsentEvent
from tests.subscribers.test_views import SIGNUP_URL, confirm_url_from, form_data

pytestmark = pytest.mark.django_db


def sign_up(client, consent_texts, n: int) -> None:
    # Another IP each time: the per-IP limit is not what is tested here.
    response = client.post(SIGNUP_URL, form_data(consent_texts), REMOTE_ADDR=f"203.0.113.{n}")
    assert response.status_code == 302
    assert response.url == reverse("subscribers:check_inbox")


def test_an_address_gets_at_most_the_days_confirmation_emails(client, consent_texts, mailoutbox, settings):
    settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY = 3
    for n in range(5):
        sign_up(client, consent_texts, n)
    assert len(mailoutbox) == 3
    assert ConfirmationRequest.objects.count() == 3
    # Past the cap nothing is recorded either: the ledger holds what was asked and mailed.
    assert ConsentEvent.objects.filter(kind="requested").count() == 3
    # The emails already sent still work.
    client.post(confirm_url_from(mailoutbox[0]))
    assert ConsentEvent.objects.filter(kind="confirmed").count() == 1


def test_the_cap_is_per_day(client, consent_texts, mailoutbox, settings):
    settings.CONFIRMATIONS_PER_ADDRESS_PER_DAY = 1
    sign_up(client, consent_texts, 1)
    sign_up(client, consent_texts, 2)
    assert len(mailoutbox) == 1
    ConfirmationRequest.objects.update(
        created_at=ConfirmationRequest.objects.get().created_at - timedelta(days=1)
    )
    sign_up(client, consent_texts, 3)
    assert len(mailoutbox) == 2


def test_an_active_subscriber_is_told_once_per_interval(client, consent_texts, mailoutbox, settings):
    sign_up(client, consent_texts, 1)
    client.post(confirm_url_from(mailoutbox[0]))
    mailoutbox.clear()
    for n in range(4):
        sign_up(client, consent_texts, 10 + n)
    assert len(mailoutbox) == 1
    assert "already" in (mailoutbox[0].subject + mailoutbox[0].body).lower()

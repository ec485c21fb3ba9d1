"""The admin sign-in is limited per IP address and per user name."""

import pytest
from django.test import Client

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def attempt(client: Client, username: str, password: str, ip: str = "198.51.100.1"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
    )


def test_guessing_one_password_after_another_is_stopped(settings):
    settings.ADMIN_LOGIN_RATE_LIMIT = "3/15m"
    StaffFactory(username="ops", password="right-horse-battery")
    client = Client()
    for _ in range(3):
        assert attempt(client, "ops", "wrong").status_code == 200  # the form again, with its error
    refused = attempt(client, "ops", "right-horse-battery")
    assert refused.status_code == 429
    assert b"Too many sign-in attempts" in refused.content
    assert "_auth_user_id" not in client.session  # even the right password does not get in now


def test_many_machines_guessing_one_account_are_stopped_too(settings):
    settings.ADMIN_LOGIN_RATE_LIMIT = "3/15m"
    StaffFactory(username="ops", password="right-horse-battery")
    for n in range(3):
        attempt(Client(), "ops", "wrong", ip=f"198.51.100.{n + 10}")
    assert attempt(Client(), "ops", "wrong", ip="198.51.100.99").status_code == 429
    # Someone else, from elsewhere, signs in as usual.
    StaffFactory(username="mia", password="another-long-phrase")
    ok = attempt(Client(), "mia", "another-long-phrase", ip="203.0.113.5")
    assert ok.status_code == 302

"""Security headers: a content security policy on public pages, frames refused but where allowed."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] for part in header.split("; ") if " " in part}


def test_public_pages_have_a_strict_policy_and_refuse_frames(seeded):
    response = Client().get("/")
    assert response.status_code == 200
    policy = directives(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_signup_form_can_be_framed_by_the_sites_named_and_only_them(seeded, settings):
    settings.SIGNUP_FRAME_ANCESTORS = ["https://www.example.com"]
    signup = Client().get("/")
    assert directives(signup)["frame-ancestors"] == "'self' https://www.example.com"
    assert "X-Frame-Options" not in signup
    # Other pages stay unframeable.
    other = Client().get("/u/not-a-token/")
    assert directives(other)["frame-ancestors"] == "'none'"
    assert other["X-Frame-Options"] == "DENY"


def test_the_admin_is_left_to_djangos_own_protection(seeded):
    response = Client().get("/admin/login/")
    assert "Content-Security-Policy" not in response
    assert response["X-Frame-Options"] == "DENY"

"""The role matrix: every URL the platform serves, for every role, against ``url_table.TABLE``.

Roles: a visitor (anonymous), a subscriber holding the links emailed to them, and staff in
the Marketers group, the Compliance group and a superuser. Each role's requests all run in
one test, and every mismatch is listed at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver

from marketing.models import Delivery
from subscribers.models import ConsentEvent, ConsentEvidence, Subscriber
from tests.security.url_table import DENIED, LOGIN, OK, REFUSED, TABLE
from tests.security.world import ADA_AGENT, ADA_IP, BOB_AGENT, BOB_IP, ROLES, World, build_world

pytestmark = pytest.mark.django_db

REFUSED_STATUSES = {400, 401, 404, 405, 410, 503}


def url_patterns() -> list[tuple[str | None, str]]:
    """Every pattern as (namespaced name or None, route), walking includes."""
    found: list[tuple[str | None, str]] = []

    def walk(patterns: Any, prefix: str, namespace: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern):
                name = f"{namespace}{entry.name}" if entry.name else None
                found.append((name, prefix + str(entry.pattern)))

    walk(get_resolver().url_patterns, "", "")
    return found


def outcome(response: Any) -> str:
    status = response.status_code
    if status in (301, 302) and "/admin/login/" in response.get("Location", ""):
        return LOGIN
    if status == 403:
        return DENIED
    if status in REFUSED_STATUSES:
        return REFUSED
    if status < 400:
        return OK
    return f"status {status}"


@pytest.fixture
def world(consent_texts, settings, tmp_path) -> World:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": "hooks:right-secret"}
    return build_world(consent_texts, tmp_path / "outbox")


def client_for(world: World, role: str) -> Client:
    client = Client()
    if role in world.staff:
        client.force_login(world.staff[role])
    return client


def test_every_url_is_in_the_table():
    names = {name for name, _route in url_patterns() if name}
    missing = sorted(names - set(TABLE))
    assert not missing, f"URL names with no expectation in tests/security/url_table.py: {missing}"
    stale = sorted(set(TABLE) - names)
    assert not stale, f"expectations for URLs that no longer exist: {stale}"
    # Unnamed patterns are only the admin's own redirects to named pages.
    unnamed = {route for name, route in url_patterns() if not name}
    assert all(
        r.startswith("admin/") and r.endswith(("<path:object_id>/", "(?P<url>.*)$")) for r in unnamed
    ), unnamed


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_what_the_table_says(world, role):
    client = client_for(world, role)
    wrong = []
    for name, row in TABLE.items():
        path = row.path(world, role)
        checks = [("GET", row.get)] + ([("POST", row.post)] if row.post else [])
        for method, expected in checks:
            response = client.get(path) if method == "GET" else client.post(path, {})
            got = outcome(response)
            if got != expected[role]:
                wrong.append(f"{method} {path} ({name}): expected {expected[role]}, got {got}")
            if role == "marketer" and got == OK:
                body = b"".join(response) if response.streaming else response.content
                for secret in (ADA_IP, ADA_AGENT, BOB_IP, BOB_AGENT):
                    if secret.encode() in body:
                        wrong.append(f"{method} {path} ({name}) shows a Marketer evidence: {secret}")
    assert not wrong, "\n".join(wrong)


# --- Admin actions (changelist POSTs) ---------------------------------------------------

# Every action each role is offered on each changelist; nothing else.
ACTIONS: dict[str, dict[str, set[str]]] = {
    "auth.user": {"superuser": {"delete_selected"}},
    "auth.group": {"superuser": {"delete_selected"}},
    "marketing.layout": {"superuser": {"delete_selected"}},
}


def offered_actions(world: World, role: str) -> dict[str, set[str]]:
    request = RequestFactory().get("/admin/")
    request.user = world.staff[role]
    offered = {}
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_view_or_change_permission(request):
            continue
        actions = set(model_admin.get_actions(request))
        if actions:
            offered[model._meta.label_lower] = actions
    return offered


@pytest.mark.parametrize("role", ["marketer", "compliance", "superuser"])
def test_admin_actions_are_only_those_in_the_table(world, role):
    expected = {model: by_role[role] for model, by_role in ACTIONS.items() if role in by_role}
    assert offered_actions(world, role) == expected


@pytest.mark.parametrize("role", ["marketer", "compliance", "superuser"])
def test_no_changelist_action_deletes_ledger_evidence_subscribers_or_deliveries(world, role):
    client = client_for(world, role)
    before = [m.objects.count() for m in (ConsentEvent, ConsentEvidence, Subscriber, Delivery)]
    for url, pk in (
        ("/admin/subscribers/consentevent/", world.event.pk),
        ("/admin/subscribers/consentevidence/", world.evidence.pk),
        ("/admin/subscribers/subscriber/", world.ada.pk),
        ("/admin/marketing/delivery/", world.delivery.pk),
    ):
        response = client.post(url, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"})
        assert response.status_code in (200, 302, 403), (url, response.status_code)
    assert [m.objects.count() for m in (ConsentEvent, ConsentEvidence, Subscriber, Delivery)] == before

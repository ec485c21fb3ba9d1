"""The admin site, with its login limited per IP address and per user name.

Brute force against staff passwords is the attack that matters most here: the admin holds
the consent ledger and personal data. Counting per IP stops one machine guessing; counting
per user name stops many machines guessing one account. Both use django-ratelimit with the
shared cache (Redis in production), so every web process sees the same counts.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django_ratelimit.core import is_ratelimited

logger = logging.getLogger(__name__)


class PlatformAdminSite(admin.AdminSite):
    def get_urls(self) -> list[Any]:
        # Imported late: the marketing app's models load after the admin site is built.
        from marketing.reports import views as reports

        return [
            path(
                "reports/list-health/",
                self.admin_view(lambda request: reports.list_health_view(request, self)),
                name="reports_list_health",
            ),
            path(
                "reports/list-health/<slug:table>.csv",
                self.admin_view(reports.list_health_csv_view),
                name="reports_list_health_csv",
            ),
            *super().get_urls(),
        ]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[Any]:
        """The apps, and on the index a "Reports" entry with the list-health dashboard."""
        from marketing.reports import views as reports

        apps = super().get_app_list(request, app_label)
        if app_label is None and reports.may_see_reports(request):
            url = reverse("admin:reports_list_health", current_app=self.name)
            dashboard = {
                "name": "List health",
                "object_name": "ListHealth",
                "admin_url": url,
                "view_only": True,
            }
            apps.append({"name": "Reports", "app_label": "reports", "app_url": url, "models": [dashboard]})
        return apps

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and self._too_many_attempts(request):
            logger.warning("admin login rate limit reached")
            context = {**self.each_context(request), "title": "Too many attempts"}
            return render(request, "admin/login_limited.html", context, status=429)
        return super().login(request, extra_context)

    @staticmethod
    def _too_many_attempts(request: HttpRequest) -> bool:
        rate = settings.ADMIN_LOGIN_RATE_LIMIT
        # Both counters move on every attempt; either one over its limit refuses the attempt.
        by_ip = is_ratelimited(request, group="admin-login-ip", key="ip", rate=rate, increment=True)
        by_name = is_ratelimited(
            request, group="admin-login-user", key="post:username", rate=rate, increment=True
        )
        return by_ip or by_name


class PlatformAdminConfig(AdminConfig):
    default_site = "config.admin_site.PlatformAdminSite"

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
from django_ratelimit.core import is_ratelimited

logger = logging.getLogger(__name__)


class PlatformAdminSite(admin.AdminSite):
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

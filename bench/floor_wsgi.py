"""The framework's floor: the app's settings and middleware, one view that answers "ok".

Served by the same gunicorn as the sign-up run, it shows what a request costs before any
work of the app's own, the sign-up's counterpart of the raw smtplib limit.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.urls import path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings
from django.core.wsgi import get_wsgi_application


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("", ok)]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()

"""The bench's framework floor: the app's own settings and middleware, one view answering "ok"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# In a process of its own: the module points the settings at its own URLconf.
SCRIPT = """
import io, sys
from bench.floor_wsgi import application
from django.conf import settings
seen = {}
def start_response(status, headers):
    seen["status"] = status
    seen["headers"] = dict(headers)
environ = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
    "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
}
body = b"".join(application(environ, start_response))
print(seen["status"], body.decode(), "csp" in str(settings.MIDDLEWARE).lower(),
      "X-Frame-Options" in seen["headers"])
"""


def test_the_floor_app_answers_ok_through_the_apps_own_middleware():
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "OK", "ok", "True", "True"]

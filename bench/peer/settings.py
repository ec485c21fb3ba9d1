"""Settings of the peer project: django-newsletter on PostgreSQL, sending to smtp-sink.

Configured from the environment by ``bench.run``: ``PEER_DATABASE_URL`` (a
``postgresql://`` URL) and ``PEER_SMTP_PORT``. Sending delays are left unset: no sleeps.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "peer-bench-only")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
SITE_ID = 1
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "bench.peer.urls"
STATIC_URL = "static/"
MEDIA_URL = "media/"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "sorl.thumbnail",
    "newsletter",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": []},
    }
]

_db = urlsplit(os.environ.get("PEER_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_peer"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": _db.username or "",
        "PASSWORD": _db.password or "",
        "HOST": _db.hostname or "127.0.0.1",
        "PORT": str(_db.port or 5432),
        "CONN_MAX_AGE": 60,
    }
}

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ.get("PEER_SMTP_PORT", "25"))
DEFAULT_FROM_EMAIL = "Example Newsletter <news@example.com>"

NEWSLETTER_THUMBNAIL = "sorl-thumbnail"  # only used for article images; there are none
NEWSLETTER_USE_HTTPS = True

"""Django settings. Every value comes from the environment (see ``.env.example``).

The defaults run the whole platform on one machine with nothing else installed:
SQLite in WAL mode, kombu's filesystem broker and a local outbox, all under ``var/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.mail_url import parse_email_url

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105
# Hashes addresses for the suppression list; set it once and never change it, or suppressed
# addresses would no longer be recognised (subscribers.E001 stops `migrate` if it changed).
# Unset, it is SECRET_KEY, which then can never be rotated: `check --deploy` warns
# (subscribers.W002).
ADDRESS_HASH_KEY = env.str("ADDRESS_HASH_KEY", default="") or SECRET_KEY
# Old keys keep already-emailed links valid while a new key is rolled out.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "config.admin_site.PlatformAdminConfig",  # django.contrib.admin, login rate-limited
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "anymail",
    "subscribers",
    "marketing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "subscribers.context_processors.organisation",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web process and the workers write at once; IMMEDIATE takes the
            # write lock at BEGIN so concurrent writers queue instead of failing to upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    )
    # A file, not memory, so a Celery worker started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    CACHES["default"]["BACKEND"] = "config.cache.RedisCache"  # one client, not one per call

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- I18n -------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English")]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at start-up when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security ---------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
# Sites allowed to show the signup form in a frame (e.g. "https://www.example.com"); every
# other page, and the signup page for every other site, refuses to be framed.
SIGNUP_FRAME_ANCESTORS = env.list("SIGNUP_FRAME_ANCESTORS", default=[])
# Content security policy for the public pages: our own scripts, styles and images only.
# The admin and the outbox are left out: they show campaign HTML, which has inline styles.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/", "/outbox/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
if SIGNUP_FRAME_ANCESTORS and CSRF_COOKIE_SECURE:
    # A form inside another site's frame only gets its CSRF cookie back with SameSite=None.
    CSRF_COOKIE_SAMESITE = "None"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if env.bool("BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# How many reverse proxies add themselves to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Email ------------------------------------------------------------------------------
_mail = parse_email_url(env.str("EMAIL_URL", default="outbox://"), default_outbox=VAR_DIR / "outbox")
EMAIL_BACKEND = _mail.backend
globals().update(_mail.settings)
OUTBOX_DIR = _mail.outbox_dir
SENDER_NAME = env.str("SENDER_NAME", default="Example Newsletter")
SENDER_EMAIL = env.str("SENDER_EMAIL", default="news@example.com")
DEFAULT_FROM_EMAIL = f"{SENDER_NAME} <{SENDER_EMAIL}>"
SERVER_EMAIL = env.str("SERVER_EMAIL", default=SENDER_EMAIL)
ANYMAIL = {
    **_mail.anymail,
    # Any other ANYMAIL_<NAME> variable becomes anymail's <NAME> (a string), notably the
    # webhook signature keys: ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY,
    # ANYMAIL_SENDGRID_TRACKING_WEBHOOK_VERIFICATION_KEY, ANYMAIL_POSTAL_WEBHOOK_KEY …
    **{
        name.removeprefix("ANYMAIL_"): value
        for name, value in os.environ.items()
        if name.startswith("ANYMAIL_") and name != "ANYMAIL_WEBHOOK_SECRET"
    },
    # Seconds anymail waits for a provider's API (connect, read); past it the batch is retried.
    "REQUESTS_TIMEOUT": env.float("ANYMAIL_REQUESTS_TIMEOUT", default=30.0),
    # "user:password" the providers send as basic auth; the webhooks refuse all until set.
    # Comma-separated pairs are all accepted, so the secret can be rotated: add the new
    # pair, change it at each provider, then remove the old one.
    "WEBHOOK_SECRET": [
        pair.strip() for pair in env.list("ANYMAIL_WEBHOOK_SECRET", default=[]) if pair.strip()
    ],
    # Never the provider's own open pixel or rewritten links, in any email: opens and clicks
    # are noted by us, and only for subscribers who agreed (marketing.tracking). Set for the
    # providers whose API takes it per message (marketing.tracking.takes_tracking_options);
    # anymail refuses it for the others (Amazon SES, Brevo, Postal …): switch it off there.
    **{
        f"{esp}_SEND_DEFAULTS": {"track_opens": False, "track_clicks": False}
        for esp in (
            "MAILERSEND",
            "MAILGUN",
            "MAILJET",
            "MANDRILL",
            "POSTMARK",
            "SENDGRID",
            "SPARKPOST",
            "UNISENDER_GO",
        )
    },
}

# --- The organisation (CAN-SPAM: name and postal address in every marketing email) -------
ORGANISATION_NAME = env.str("ORGANISATION_NAME", default="Example Ltd")
ORGANISATION_ADDRESS = env.str("ORGANISATION_ADDRESS", default="1 Example Street, Example City")
if not DEBUG and not env.str("ORGANISATION_ADDRESS", default=""):
    raise ImproperlyConfigured("ORGANISATION_ADDRESS must be set when DEBUG is off.")

# --- Subscriptions ----------------------------------------------------------------------
CONFIRMATION_EXPIRY_DAYS = env.int("CONFIRMATION_EXPIRY_DAYS", default=7)
SIGNUP_RATE_LIMIT = env.str("SIGNUP_RATE_LIMIT", default="10/h")
# Admin sign-in attempts per IP address and, separately, per user name (e.g. "10/15m").
ADMIN_LOGIN_RATE_LIMIT = env.str("ADMIN_LOGIN_RATE_LIMIT", default="10/15m")
# Unsubscribe and preference links in emails work this long (CAN-SPAM asks 30 days, we
# promise at least 60; anything lower is raised to 60).
LINK_MAX_AGE_DAYS = env.int("LINK_MAX_AGE_DAYS", default=365)
# Downloading one's data needs a preferences link sent this recently: an older one may
# be in a forwarded email. Older links get a button that emails a fresh one.
FRESH_LINK_HOURS = env.int("FRESH_LINK_HOURS", default=24)
# "Manage my subscription" (/manage/): requests per IP address, and at most one email per
# address per MANAGE_LINK_INTERVAL_MINUTES whoever asks.
MANAGE_LINK_RATE_LIMIT = env.str("MANAGE_LINK_RATE_LIMIT", default="5/h")
MANAGE_LINK_INTERVAL_MINUTES = env.int("MANAGE_LINK_INTERVAL_MINUTES", default=15)
# Anyone can type an address on the signup page: at most this many double opt-in emails to
# one address a day (later signups for it record and send nothing; earlier links still
# work), and "already subscribed" emails at most one per MANAGE_LINK_INTERVAL_MINUTES.
CONFIRMATIONS_PER_ADDRESS_PER_DAY = env.int("CONFIRMATIONS_PER_ADDRESS_PER_DAY", default=5)
# The mailto: of List-Unsubscribe (default: SENDER_EMAIL). Its mailbox must be read.
UNSUBSCRIBE_MAILTO = env.str("UNSUBSCRIBE_MAILTO", default="")
RATELIMIT_IP_META_KEY = "subscribers.http.client_ip_for_ratelimit"

# --- Campaign dispatch ------------------------------------------------------------------
SEND_RATE_PER_SECOND = env.int("SEND_RATE_PER_SECOND", default=0)  # 0: no limit
DISPATCH_BATCH_SIZE = env.int("DISPATCH_BATCH_SIZE", default=200)
# Runners queued when a campaign starts or resumes: about the number of worker processes.
DISPATCH_RUNNERS = env.int("DISPATCH_RUNNERS", default=4)
DISPATCH_LEASE_SECONDS = env.int("DISPATCH_LEASE_SECONDS", default=300)
DISPATCH_RUN_SECONDS = env.float("DISPATCH_RUN_SECONDS", default=10.0)
DISPATCH_MAX_ATTEMPTS = env.int("DISPATCH_MAX_ATTEMPTS", default=5)
DISPATCH_RETRY_BASE_SECONDS = env.float("DISPATCH_RETRY_BASE_SECONDS", default=30.0)
DISPATCH_MAX_FAILURE_RATE = env.float("DISPATCH_MAX_FAILURE_RATE", default=0.2)
DISPATCH_FAILURE_MIN_SAMPLE = env.int("DISPATCH_FAILURE_MIN_SAMPLE", default=50)

# --- Provider events and guardrails -----------------------------------------------------
# Deliveries in a row that soft-bounce (no "delivered" between) before the address is suppressed.
SOFT_BOUNCE_LIMIT = env.int("SOFT_BOUNCE_LIMIT", default=3)
# A sending campaign pauses itself when complaints or bounces per message sent reach these,
# once it has sent GUARDRAIL_MIN_SENT (Gmail and Yahoo: keep complaints below 0.1%).
GUARDRAIL_COMPLAINT_RATE = env.float("GUARDRAIL_COMPLAINT_RATE", default=0.001)
GUARDRAIL_BOUNCE_RATE = env.float("GUARDRAIL_BOUNCE_RATE", default=0.05)
GUARDRAIL_MIN_SENT = env.int("GUARDRAIL_MIN_SENT", default=100)
# Reports: the days the list-health dashboard shows (and its first rollup rebuilds), and the
# complaint rate mailbox providers never want reached (Gmail and Yahoo: 0.3%).
LIST_HEALTH_DAYS = env.int("LIST_HEALTH_DAYS", default=90)
REPORT_COMPLAINT_LINE = env.float("REPORT_COMPLAINT_LINE", default=0.003)

# --- Celery -----------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport needs absolute folders, control_folder included,
    # so workers started from any directory share one queue.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith("redis://"):
    CELERY_BROKER_TRANSPORT = "config.broker:RedisTransport"  # one client, not one per publish
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A double opt-in or address-change email still unsent this long after it was asked for is
# queued again (its task never reached the broker): see subscribers.tasks.send_unsent_emails.
UNSENT_EMAIL_AFTER_SECONDS = env.int("UNSENT_EMAIL_AFTER_SECONDS", default=600)
# Such an email is sent under a claim in the cache, so that the first task and the sweep's
# copy never both send it. It is released once the email is sent; one left by a worker that
# died mid-send lapses after this long. It must outlast a slow send (SMTP or provider timeout).
TRANSACTIONAL_EMAIL_CLAIM_SECONDS = env.int("TRANSACTIONAL_EMAIL_CLAIM_SECONDS", default=300)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "expire-unconfirmed-signups": {
        "task": "subscribers.expire_confirmations",
        "schedule": env.float("EXPIRE_CONFIRMATIONS_EVERY_SECONDS", default=3600.0),
    },
    "send-unsent-emails": {
        "task": "subscribers.send_unsent_emails",
        "schedule": env.float("SEND_UNSENT_EMAILS_EVERY_SECONDS", default=300.0),
    },
    "start-due-campaigns": {
        "task": "marketing.start_due_campaigns",
        "schedule": env.float("START_DUE_CAMPAIGNS_EVERY_SECONDS", default=30.0),
    },
    "keep-campaigns-moving": {
        "task": "marketing.keep_campaigns_moving",
        "schedule": env.float("KEEP_CAMPAIGNS_MOVING_EVERY_SECONDS", default=60.0),
    },
    "process-pending-delivery-events": {
        "task": "marketing.process_pending_delivery_events",
        "schedule": env.float("PROCESS_PENDING_EVENTS_EVERY_SECONDS", default=300.0),
    },
    "refresh-reports": {
        "task": "marketing.refresh_reports",
        "schedule": env.float("LIST_HEALTH_ROLLUP_EVERY_SECONDS", default=600.0),
    },
}

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    # No addresses, IPs or link tokens in the logs, whoever logs them (config/log_filters.py).
    "filters": {
        "personal_data": {"()": "config.log_filters.RedactPersonalData"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["personal_data"]},
        # The development server's request lines carry link tokens.
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["personal_data"],
        },
        "mail_admins": {
            "level": "ERROR",
            "class": "django.utils.log.AdminEmailHandler",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Replaces Django's own "django" handlers: its console one (DEBUG only) has no filter
        # and wrote each line, unmasked, before the root handler masked it.
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}

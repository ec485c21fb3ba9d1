"""Where the bench keeps things and the environment every process of the app gets.

The app runs as in production: ``DEBUG`` off, a ``SECRET_KEY`` drawn for the run,
collected static files, PostgreSQL ``bench`` (dropped and recreated), Redis db 5 as the
broker and db 6 as the cache (flushed; nothing else on the server is touched).

To run beside other work (tests, another bench): ``BENCH_DATABASE`` names the database
(default ``bench``; the peer's is ``<name>_peer``) and ``BENCH_REDIS_URL`` the Redis server
(default ``redis://127.0.0.1:6379``; still dbs 5 and 6 of it).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "var" / "bench"
BROKER_DB, CACHE_DB = 5, 6
DATABASE = os.environ.get("BENCH_DATABASE", "bench")
PEER_DATABASE = f"{DATABASE}_peer"
_REDIS = urlsplit(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
REDIS_HOST, REDIS_PORT = _REDIS.hostname or "127.0.0.1", _REDIS.port or 6379
# https: RFC 8058 one-click unsubscribe links must be https; the host is never contacted.
SITE_URL = "https://news.example.com"


@dataclass
class Config:
    database_url: str
    python: Path = ROOT / ".venv" / "bin" / "python"
    out: Path = OUT
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(40))

    @property
    def var_dir(self) -> Path:
        return self.out / "app"  # the app's VAR_DIR: static files, demo credentials

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def stats(self) -> Path:
        return self.out / "stats"

    def app_env(self, **extra: str) -> dict[str, str]:
        """Environment for ``manage.py``, workers and gunicorn (``extra`` wins)."""
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        env = {key: os.environ[key] for key in keep if key in os.environ}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "PYTHONUNBUFFERED": "1",
                "DEBUG": "0",
                "SECRET_KEY": self.secret_key,
                "ORGANISATION_NAME": "Bench Ltd",
                "ORGANISATION_ADDRESS": "1 Bench Street, Bench City",
                "SECURE_COOKIES": "0",  # plain http on loopback
                "SITE_URL": SITE_URL,
                "VAR_DIR": str(self.var_dir),
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
                "CACHE_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{CACHE_DB}",
                "EMAIL_URL": "locmem://",
                "SEND_RATE_PER_SECOND": "0",
                "LOG_LEVEL": "WARNING",
                "BENCH_STATS_DIR": str(self.stats),
            }
        )
        env.update(extra)
        return env

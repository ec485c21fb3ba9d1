"""PostgreSQL and Redis for the bench: started when down (as ``.ci/run`` does), its own
databases dropped and recreated, its own Redis db numbers flushed; and the facts about this
machine that every result is printed with."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench.config import REDIS_HOST, REDIS_PORT
from bench.procs import Supervisor, wait_until

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_ready() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _redis_ready() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def ensure_postgresql(supervisor: Supervisor) -> None:
    if _pg_ready():
        return
    clusters = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not clusters:
        raise RuntimeError("PostgreSQL is not running on 127.0.0.1:5432 and no cluster is installed")
    version = clusters[0]
    print(f"bench: starting PostgreSQL {version}/main")
    subprocess.run(  # noqa: S603
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],  # noqa: S607
        check=True,
    )

    def stop() -> None:
        subprocess.run(  # noqa: S603
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"],  # noqa: S607
            check=False,
        )

    supervisor.on_stop("PostgreSQL", stop)
    wait_until(_pg_ready, timeout=30, what="PostgreSQL", interval=0.5)


def ensure_redis(supervisor: Supervisor, pidfile: Path) -> None:
    if _redis_ready():
        return
    print(f"bench: starting Redis on {REDIS_HOST}:{REDIS_PORT}")
    subprocess.run(  # noqa: S603
        [  # noqa: S607
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            REDIS_HOST,
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--pidfile",
            str(pidfile),
        ],
        check=True,
    )

    def stop() -> None:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().strip()), 15)

    supervisor.on_stop("Redis", stop)
    wait_until(_redis_ready, timeout=30, what="Redis", interval=0.5)


def recreate_database(name: str) -> str:
    """Drop and create database ``name``; returns its ``DATABASE_URL``."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flush_redis(*dbs: int) -> None:
    """FLUSHDB on the bench's own db numbers only, never the whole server."""
    for db in dbs:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def database_size(url: str) -> int:
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def vacuum(url: str) -> float:
    """VACUUM (ANALYZE) the whole database; returns the seconds it took.

    After a bulk load, and before each campaign: what autovacuum would have done by then on
    a live system (statistics, the visibility map, the previous campaign's dead rows). Left
    to autovacuum, it runs during the next measurement, on the same two cores.
    """
    started = time.monotonic()
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return time.monotonic() - started


def environment(python: Path) -> dict[str, Any]:
    """CPU, cores, memory, load and the versions the figures were measured with."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    versions = subprocess.run(  # noqa: S603
        [
            str(python),
            "-c",
            "import django, celery, anymail, gunicorn, psycopg; print(django.get_version(), "
            "celery.__version__, anymail.__version__, gunicorn.__version__, psycopg.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        pg_version = str(row[0]) if row else "?"
    redis_version = redis.Redis(host=REDIS_HOST, port=REDIS_PORT).info("server")["redis_version"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "load_average_at_start": os.getloadavg(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "django": versions[0],
        "celery": versions[1],
        "django_anymail": versions[2],
        "gunicorn": versions[3],
        "psycopg": versions[4],
        "postgresql": pg_version,
        "redis": redis_version,
        "smtp_sink": shutil.which("smtp-sink") or "/usr/sbin/smtp-sink",
    }

"""Server CPU per sign-up, in-process: ``python -m bench.signup_cpu [--count 400] [--profile]``.

What ``bench.signup`` does (a new visitor GETs the page, then POSTs the form urlencoded with
its CSRF token and one box ticked), through Django's test client in this process, the app
set up as the bench runs it (``DEBUG`` off, PostgreSQL, Redis, the confirmation email
published to the broker on commit). It prints the CPU time of Django's request handler
alone, GET and POST, best of ``--rounds``, and the SQL statements each runs. CPU time
depends far less on other work on the machine than sign-ups per second do, so two versions
of the code can be compared on a busy machine: run both, in turns.

Database ``<BENCH_DATABASE>_cpu`` (recreated, dropped at the end); Redis dbs 5 and 6 of
``BENCH_REDIS_URL`` (flushed before and after), as the bench.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any
from urllib.parse import urlencode

from bench import services
from bench.config import BROKER_DB, CACHE_DB, DATABASE, OUT, Config
from bench.run import manage
from bench.signup import CONSENT_BOX
from bench.web import csrf_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signup_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=400, help="sign-ups per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile (CPU time) one more round")
    args = parser.parse_args(argv)
    name = f"{DATABASE}_cpu"
    config = Config(database_url=services.recreate_database(name), out=OUT / "cpu")
    services.flush_redis(BROKER_DB, CACHE_DB)
    try:
        manage(config, "migrate", "--noinput")
        manage(config, "collectstatic", "--noinput")
        manage(config, "seed_demo", "--force")  # the purposes and their published texts
        os.environ.update(config.app_env(SIGNUP_RATE_LIMIT="1000000/s", ALLOWED_HOSTS="testserver"))
        import django

        django.setup()
        _measure(args.count, args.rounds, args.profile)
    finally:
        from django.db import connections

        connections.close_all()
        services.drop_database(name)
        services.flush_redis(BROKER_DB, CACHE_DB)
    return 0


def _measure(count: int, rounds: int, profile: bool) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(enforce_csrf_checks=True)
    spent = {"GET": 0.0, "POST": 0.0}
    handler: Any = client.handler
    inner: Callable[..., Any] = handler.get_response

    def timed(request: Any) -> Any:
        started = time.process_time()
        try:
            return inner(request)
        finally:
            spent[request.method] += time.process_time() - started

    handler.get_response = timed  # the handler alone: not the test client's own work
    prefix = uuid.uuid4().hex[:8]
    statements: list[int] = []

    def sign_up(n: str, *, count_sql: bool = False) -> None:
        # Counting is for one sign-up apart: it has Django log (and time) every statement.
        def counted() -> AbstractContextManager[Any]:
            return CaptureQueriesContext(connection) if count_sql else nullcontext()

        client.cookies.clear()  # a new visitor each time
        with counted() as page_sql:
            page = client.get("/")
        body = page.content
        form = {
            "csrfmiddlewaretoken": csrf_token(body),
            "email": f"cpu-{prefix}-{n}@example.org",
            "name": f"Visitor {n}",
            "website": "",
            CONSENT_BOX.findall(body.decode())[0]: "on",
        }
        with counted() as post_sql:
            answer = client.post("/", urlencode(form), content_type="application/x-www-form-urlencoded")
        if answer.status_code != 302:
            raise RuntimeError(f"POST answered {answer.status_code}")
        if count_sql:
            statements[:] = [len(page_sql), len(post_sql)]

    for n in range(50):  # warm: templates, the kept page and offers, connections
        sign_up(f"warm-{n}")
    sign_up("sql", count_sql=True)
    results = []
    for r in range(max(rounds, 1)):
        spent["GET"] = spent["POST"] = 0.0
        for n in range(count):
            sign_up(f"{r}-{n}")
        results.append((spent["GET"] / count * 1000, spent["POST"] / count * 1000))
    best = min(results, key=sum)  # the round least disturbed by other work
    print(
        f"server CPU per sign-up (best of {rounds} rounds of {count}): GET {best[0]:.2f} ms, "
        f"POST {best[1]:.2f} ms, both {sum(best):.2f} ms; SQL statements: GET {statements[0]}, "
        f"POST {statements[1]}; load average {os.getloadavg()[0]:.2f}"
    )
    if profile:
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for n in range(count):
            sign_up(f"profile-{n}")
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(50)
        print(out.getvalue())


if __name__ == "__main__":
    raise SystemExit(main())

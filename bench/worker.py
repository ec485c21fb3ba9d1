"""The project's Celery app, as the bench's workers run it (``celery -A bench.worker worker``),
with two measurements added from outside the application code:

- every SQL statement of a ``marketing.run_campaign`` task is counted and timed (a Django
  ``execute_wrapper``), and the batches it sent are counted (a wrapper around
  ``marketing.dispatch.send_batch``); one JSON line per task goes to
  ``$BENCH_STATS_DIR/worker-<pid>.jsonl``;
- with ``BENCH_PROFILE=1`` each task also runs under cProfile, dumped beside it.

The overhead is one Python call per statement (a few per batch of hundreds of messages).
"""

from __future__ import annotations

import cProfile
import json
import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

from config.celery import app

__all__ = ["app"]

STATS_DIR = Path(os.environ.get("BENCH_STATS_DIR", "var/bench/stats"))
PROFILE = os.environ.get("BENCH_PROFILE", "") == "1"
TASK = "marketing.run_campaign"


class _Counter:
    def __init__(self) -> None:
        self.queries = 0
        self.db_seconds = 0.0
        self.batches = 0
        self.batch_queries: list[int] = []
        self.batch_sizes: list[int] = []
        self.started = 0.0
        self.cpu_started = 0.0
        self.profile: cProfile.Profile | None = None

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.db_seconds += time.perf_counter() - started
            self.queries += 1


_current: _Counter | None = None


def _install_batch_counter() -> None:
    from marketing import dispatch

    original = dispatch.send_batch
    if getattr(original, "_bench_wrapped", False):
        return

    def send_batch(**kwargs: Any) -> Any:
        counter = _current
        before = counter.queries if counter else 0
        result = original(**kwargs)
        if counter is not None:
            counter.batches += 1
            counter.batch_queries.append(counter.queries - before)
            counter.batch_sizes.append(len(kwargs.get("delivery_ids", ())))
        return result

    send_batch._bench_wrapped = True  # type: ignore[attr-defined]
    dispatch.send_batch = send_batch


@task_prerun.connect
def _start(task: Any = None, **_: Any) -> None:
    global _current
    if task is None or task.name != TASK:
        return
    from django.db import connection

    _install_batch_counter()
    _current = _Counter()
    connection.execute_wrappers.append(_current)
    _current.started = time.perf_counter()
    _current.cpu_started = time.process_time()
    if PROFILE:
        _current.profile = cProfile.Profile()
        _current.profile.enable()


@task_postrun.connect
def _stop(task: Any = None, task_id: str = "", **_: Any) -> None:
    global _current
    counter = _current
    if task is None or task.name != TASK or counter is None:
        return
    from django.db import connection

    _current = None
    if counter.profile is not None:
        counter.profile.disable()
    seconds = time.perf_counter() - counter.started
    cpu_seconds = time.process_time() - counter.cpu_started
    if counter in connection.execute_wrappers:
        connection.execute_wrappers.remove(counter)
    STATS_DIR.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "task_id": task_id,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "queries": counter.queries,
        "db_seconds": counter.db_seconds,
        "batches": counter.batches,
        "batch_queries": counter.batch_queries,
        "batch_sizes": counter.batch_sizes,
    }
    with (STATS_DIR / f"worker-{os.getpid()}.jsonl").open("a") as out:
        out.write(json.dumps(record) + "\n")
    if counter.profile is not None:
        counter.profile.dump_stats(str(STATS_DIR / f"profile-{os.getpid()}-{task_id}.pstats"))

"""Sign-ups per second against gunicorn and PostgreSQL, with p50/p99 latency.

Each sign-up is what a visitor's browser does: GET the signup page as a new visitor (no
cookie: a fresh CSRF cookie and token), then POST the form with the token, a new address,
the newsletter box ticked and the honeypot field left empty. Each virtual visitor is a
thread with one keep-alive connection; the run is bounded by a count and a time limit.
A sign-up counts when the POST answers 302 to "check your inbox"; afterwards the bench
counts the subscribers the run created, since the same answer is given for a honeypot hit.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.web import Browser, csrf_token

CONSENT_BOX = re.compile(r'name="(consent_\d+_email)"')


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Run:
    def __init__(self, port: int, *, total: int, seconds: float, prefix: str) -> None:
        self.port, self.total, self.prefix = port, total, prefix
        self.deadline = time.monotonic() + seconds
        self.lock = threading.Lock()
        self.next = 0
        self.post_latency: list[float] = []
        self.pair_latency: list[float] = []
        self.get_latency: list[float] = []
        self.errors: dict[str, int] = {}
        self.done: list[float] = []

    def take(self) -> int | None:
        with self.lock:
            if self.next >= self.total or time.monotonic() > self.deadline:
                return None
            self.next += 1
            return self.next

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1

    def visitor(self) -> None:
        browser = Browser(self.port)
        while (n := self.take()) is not None:
            browser.cookies.clear()  # a new visitor each time
            try:
                page = browser.request("GET", "/")
                if page.status != 200:
                    self.error(f"GET {page.status}")
                    continue
                boxes = CONSENT_BOX.findall(page.body.decode("utf-8", "replace"))
                form = {
                    "csrfmiddlewaretoken": csrf_token(page.body),
                    "email": f"{self.prefix}-{n:07d}@example.org",
                    "name": f"Visitor {n}",
                    "website": "",  # the honeypot stays empty
                    boxes[0]: "on",
                }
                answer = browser.request("POST", "/", form)
            except Exception as exc:
                self.error(type(exc).__name__)
                continue
            if answer.status == 302 and "check-your-inbox" in (answer.headers.get("Location") or ""):
                with self.lock:
                    self.get_latency.append(page.total)
                    self.post_latency.append(answer.total)
                    self.pair_latency.append(page.total + answer.total)
                    self.done.append(time.monotonic())
            else:
                self.error(f"POST {answer.status}")
        browser.close()


def run(
    port: int,
    *,
    total: int,
    seconds: float,
    concurrency: int,
    warmup: int,
    server_cpu: Callable[[], float] | None = None,
    database_cpu: Callable[[], float] | None = None,
) -> dict[str, Any]:
    """``warmup`` sign-ups first (not counted), then up to ``total`` in at most ``seconds``.

    ``server_cpu`` and ``database_cpu`` read the web server's and PostgreSQL's CPU seconds
    around the measured part; this process's own (the visitors) is read too.
    """
    prefix = f"signup-{uuid.uuid4().hex[:8]}"
    warm = _Run(port, total=warmup, seconds=60, prefix=f"{prefix}-warm")
    if warmup:
        _drive(warm, concurrency)
    measured = _Run(port, total=total, seconds=seconds, prefix=prefix)
    cpu_before = server_cpu() if server_cpu else 0.0
    db_before = database_cpu() if database_cpu else 0.0
    client_before = time.process_time()
    started = time.monotonic()
    _drive(measured, concurrency)
    cpu = (server_cpu() - cpu_before) if server_cpu else None
    db_cpu = (database_cpu() - db_before) if database_cpu else None
    client_cpu = time.process_time() - client_before
    elapsed = (max(measured.done) if measured.done else time.monotonic()) - started
    ok = len(measured.done)
    ms = 1000.0
    return {
        "email_prefix": prefix,
        "concurrency": concurrency,
        "signups": ok,
        "warmup_signups": len(warm.done),
        "server_cpu_ms_per_signup": round(cpu / ok * 1000, 1) if cpu is not None and ok else None,
        "database_cpu_ms_per_signup": round(db_cpu / ok * 1000, 1) if db_cpu is not None and ok else None,
        "client_cpu_ms_per_signup": round(client_cpu / ok * 1000, 1) if ok else None,
        "errors": measured.errors,
        "seconds": elapsed,
        "per_second": ok / elapsed if elapsed > 0 else 0.0,
        "post_p50_ms": _percentile(measured.post_latency, 0.50) * ms,
        "post_p99_ms": _percentile(measured.post_latency, 0.99) * ms,
        "get_p50_ms": _percentile(measured.get_latency, 0.50) * ms,
        "get_p99_ms": _percentile(measured.get_latency, 0.99) * ms,
        "page_and_post_p50_ms": _percentile(measured.pair_latency, 0.50) * ms,
        "page_and_post_p99_ms": _percentile(measured.pair_latency, 0.99) * ms,
        "post_mean_ms": statistics.fmean(measured.post_latency) * ms if measured.post_latency else None,
    }


def _drive(state: _Run, concurrency: int) -> None:
    threads = [threading.Thread(target=state.visitor, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        # Bounded: the run's own deadline stops new sign-ups; one request may still be in flight.
        thread.join(timeout=max(state.deadline - time.monotonic(), 0) + 60)


def floor(port: int, *, seconds: float, concurrency: int, server_cpu: Callable[[], float]) -> dict[str, Any]:
    """Requests per second and server CPU per request for ``bench.floor_wsgi``'s "ok" view.

    The same visitors as a sign-up run (threads with one keep-alive connection each), each
    asking for the page again and again for ``seconds``.
    """
    deadline = time.monotonic() + seconds
    counts: list[int] = []
    lock = threading.Lock()

    def visitor() -> None:
        browser, done = Browser(port), 0
        while time.monotonic() < deadline:
            if browser.request("GET", "/").status == 200:
                done += 1
        browser.close()
        with lock:
            counts.append(done)

    Browser(port).request("GET", "/")  # every worker imports the app before the clock starts
    cpu_before, started = server_cpu(), time.monotonic()
    threads = [threading.Thread(target=visitor, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    elapsed, cpu, requests = time.monotonic() - started, server_cpu() - cpu_before, sum(counts)
    return {
        "requests": requests,
        "per_second": requests / elapsed if elapsed > 0 else 0.0,
        "server_cpu_ms_per_request": round(cpu / requests * 1000, 2) if requests else None,
    }

"""A messages-per-second limit shared by every worker on every machine.

Counts live in the Django cache (Redis in production, so all workers share them): one
counter per second; a worker that would exceed the limit waits for the next second. A
provider's "slow down" (HTTP 429 with Retry-After) sets a hold that every worker honours.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

_HOLD_KEY = "throttle:hold-until"


def hold(seconds: float) -> None:
    """Every worker stops sending for ``seconds`` (a provider asked us to slow down)."""
    until = time.time() + max(seconds, 0.0)
    cache.set(_HOLD_KEY, until, timeout=int(seconds) + 5)


def acquire(count: int) -> None:
    """Block until ``count`` messages may be sent without passing the shared limit."""
    limit = settings.SEND_RATE_PER_SECOND
    while True:
        held_until = cache.get(_HOLD_KEY)
        if held_until and held_until > time.time():
            time.sleep(min(held_until - time.time(), 5.0))
            continue
        if limit <= 0:
            return
        second = int(time.time())
        key = f"throttle:{second}"
        cache.add(key, 0, timeout=5)
        try:
            used = cache.incr(key, count)
        except ValueError:  # expired between add and incr
            continue
        if used <= limit or (count > limit and used == count):
            # A batch bigger than the limit goes alone in its own second.
            return
        cache.decr(key, count)
        time.sleep(max(second + 1 - time.time(), 0.01))

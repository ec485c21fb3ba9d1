"""A messages-per-second limit shared by every worker on every machine.

Counts live in the Django cache (Redis in production, so all workers share them): one
counter per second; a worker that would exceed the limit waits for the next second. A
provider's "slow down" (HTTP 429 with Retry-After) sets a hold that every worker honours.

The cache going away (Redis restarting) must not fail a batch that may already be half
sent elsewhere: without the cache each worker keeps its own hold and paces itself to the
whole limit, as if it were alone, until the cache answers again.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_HOLD_KEY = "throttle:hold-until"
# This process's copy of the hold, for when the cache cannot be read.
_local_hold_until = 0.0


def hold(seconds: float) -> None:
    """Every worker stops sending for ``seconds`` (a provider asked us to slow down)."""
    global _local_hold_until
    until = time.time() + max(seconds, 0.0)
    _local_hold_until = max(_local_hold_until, until)
    try:
        cache.set(_HOLD_KEY, until, timeout=int(seconds) + 5)
    except Exception as exc:  # redis-py raises its own ConnectionError, not an OSError
        logger.warning("throttle: cache unavailable, the hold stays in this worker: %s", exc)


def acquire(count: int) -> None:
    """Block until ``count`` messages may be sent without passing the shared limit."""
    limit = settings.SEND_RATE_PER_SECOND
    while True:
        try:
            held_until = max(cache.get(_HOLD_KEY) or 0.0, _local_hold_until)
        except Exception as exc:
            logger.warning("throttle: cache unavailable, pacing this worker alone: %s", exc)
            _acquire_alone(count, limit)
            return
        if held_until > time.time():
            time.sleep(min(held_until - time.time(), 5.0))
            continue
        if limit <= 0:
            return
        second = int(time.time())
        key = f"throttle:{second}"
        try:
            cache.add(key, 0, timeout=5)
            used = cache.incr(key, count)
        except ValueError:  # expired between add and incr
            continue
        except Exception as exc:
            logger.warning("throttle: cache unavailable, pacing this worker alone: %s", exc)
            _acquire_alone(count, limit)
            return
        if used <= limit or (count > limit and used == count):
            # A batch bigger than the limit goes alone in its own second.
            return
        try:
            cache.decr(key, count)
        except Exception:  # the counter expires by itself within 5 s
            logger.warning("throttle: could not give back %s sends", count)
        time.sleep(max(second + 1 - time.time(), 0.01))


def _acquire_alone(count: int, limit: int) -> None:
    wait = _local_hold_until - time.time()
    if limit > 0:
        wait = max(wait, count / limit)
    if wait > 0:
        time.sleep(wait)

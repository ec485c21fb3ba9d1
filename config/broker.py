"""kombu's Redis transport, keeping one ``redis.Redis`` client per channel and connection pool.

kombu's ``Channel.conn_or_acquire`` builds a new ``redis.Redis`` for every publish (and every
other synchronous command), and building one copies its table of some 150 response
callbacks: ~80 µs of a ~480 µs ``.delay()``, paid by every sign-up for its confirmation email.
The connection pool was shared already; now the client on top of it is too, as
``config/cache.py`` does for the cache. A client holds no state of its own: each command
takes a connection from the pool, and pipelines, locks and transactions are built per use.
A channel whose pool is replaced (kombu drops it on a lost connection) gets a new client.
``CELERY_BROKER_URL=redis://…`` selects this transport (``config.settings``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _sync_client: tuple[Any, Any] | None = None  # (the pool it was built on, the client)

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        channel: Any = self  # kombu's own helpers, which its type hints leave out
        pool = channel.pool
        kept = self._sync_client
        if kept is None or kept[0] is not pool:
            kept = self._sync_client = (pool, channel._create_client())
        yield kept[1]


class RedisTransport(redis.Transport):
    Channel = Channel

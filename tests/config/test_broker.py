"""The Redis broker keeps one client per channel: kombu made a new ``redis.Redis`` per publish."""

from __future__ import annotations

import uuid

from django.conf import settings

from config.broker import RedisTransport
from config.celery import app as celery_app
from tests.conftest import require_service


def test_publishes_share_one_client_and_still_arrive():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        require_service("a Redis broker", "CELERY_BROKER_URL is not redis://")
    with celery_app.connection_for_write() as connection:
        assert isinstance(connection.transport, RedisTransport)
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
        queue = connection.SimpleQueue(f"test-broker-{uuid.uuid4().hex}")
        try:
            queue.put({"n": 1})
            queue.put({"n": 2})
            assert [queue.get(timeout=5).payload for _ in range(2)] == [{"n": 1}, {"n": 2}]
        finally:
            queue.queue.delete()
            queue.close()
        # kombu replaces a channel's pool after a lost connection: the client follows it.
        channel._pool = None
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool

"""The Redis cache keeps one client: Django's made a new ``redis.Redis`` for every call."""

from __future__ import annotations

import pytest

from config.cache import RedisCache


def test_every_cache_call_gets_the_same_client():
    backend = RedisCache("redis://127.0.0.1:6379/15", {})  # no command is sent
    client = backend._cache.get_client()
    assert backend._cache.get_client("key") is client
    assert backend._cache.get_client(write=True) is client


def test_incr_is_one_round_trip_and_keeps_djangos_contract():
    from django.core.cache import caches

    from tests.conftest import require_service

    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        require_service("a Redis cache", "CACHE_URL is not redis://")
    client = cache._cache.get_client(write=True)
    sent: list[str] = []
    execute = client.execute_command

    def counting(*args, **kwargs):
        sent.append(str(args[0]))
        return execute(*args, **kwargs)

    client.execute_command = counting
    try:
        with pytest.raises(ValueError, match="not found"):
            cache.incr("test-incr-missing")
        assert cache.get("test-incr-missing") is None  # never created
        cache.set("test-incr", 5, timeout=60)
        sent.clear()
        assert cache.incr("test-incr") == 6
        assert cache.incr("test-incr", 10) == 16
        assert cache.decr("test-incr", 6) == 10
        assert sent == ["EVALSHA"] * 3
        assert 0 < client.ttl(cache.make_key("test-incr")) <= 60  # the timeout is kept
        client.script_flush()  # as after a Redis restart: the script is loaded again
        assert cache.incr("test-incr") == 11
    finally:
        client.execute_command = execute
        cache.delete_many(["test-incr", "test-incr-missing"])

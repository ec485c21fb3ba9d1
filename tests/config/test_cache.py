"""The Redis cache keeps one client: Django's made a new ``redis.Redis`` for every call."""

from __future__ import annotations

from config.cache import RedisCache


def test_every_cache_call_gets_the_same_client():
    backend = RedisCache("redis://127.0.0.1:6379/15", {})  # no command is sent
    client = backend._cache.get_client()
    assert backend._cache.get_client("key") is client
    assert backend._cache.get_client(write=True) is client

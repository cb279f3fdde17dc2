"""The bounded cache with a deadline per entry (LRU eviction, expiry, past deadlines dropped)."""

from __future__ import annotations

from secure_mcp.common.caches import ExpiringLru


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_until_its_own_deadline() -> None:
    clock = Clock()
    cache: ExpiringLru[str, int] = ExpiringLru(4, clock)
    cache.put("short", 1, clock.now + 5)
    cache.put("long", 2, clock.now + 60)
    clock.now += 4.9
    assert (cache.get("short"), cache.get("long")) == (1, 2)
    clock.now += 0.1  # the deadline itself is past
    assert cache.get("short") is None
    assert cache.get("long") == 2
    assert len(cache) == 1


def test_a_deadline_already_past_is_not_kept() -> None:
    clock = Clock()
    cache: ExpiringLru[str, int] = ExpiringLru(4, clock)
    cache.put("k", 1, clock.now)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_the_least_recently_used_is_evicted_first() -> None:
    clock = Clock()
    cache: ExpiringLru[str, int] = ExpiringLru(2, clock)
    cache.put("a", 1, clock.now + 60)
    cache.put("b", 2, clock.now + 60)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3, clock.now + 60)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    cache.clear()
    assert len(cache) == 0

"""A bounded in-memory cache whose entries expire each at its own deadline (cachetools)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TLRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _deadline(_key: object, entry: tuple[float, object], _now: float) -> float:
    return entry[0]


class ExpiringLru(Generic[K, V]):
    """At most `size` (>= 1) entries, the least recently used evicted first; each lives until
    the deadline it was put with, on `clock`'s scale (one already past is not kept)."""

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        self._entries: TLRUCache[K, tuple[float, V]] = TLRUCache(size, _deadline, clock)

    def __len__(self) -> int:
        self._entries.expire()
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: K, value: V, until: float) -> None:
        """Keep `value` under `key` until the time `until`."""
        self._entries[key] = (until, value)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

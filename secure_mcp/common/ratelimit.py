"""Per-key rate limits (token buckets) with bounded memory, shared by both servers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache

Clock = Callable[[], float]


class Limiter(Protocol):
    """What an endpoint needs from a rate limit; a shared (database) one may replace the memory one.

    Both methods answer the seconds to wait before the key may act again, 0.0 when it may now.
    """

    async def check(self, key: str) -> float:
        """The wait for `key`, without spending anything."""
        ...

    async def hit(self, key: str) -> float:
        """Spend one unit for `key` when it has one (answer 0.0); else the wait, nothing spent."""
        ...


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class MemoryLimiter:
    """Token buckets per key: `burst` units at once, refilled at `rate` units per second.

    At most `max_keys` keys are kept (least recently used forgotten), so a flood of distinct keys
    cannot grow memory; a forgotten key starts again with a full bucket.
    """

    def __init__(
        self, rate: float, burst: int, *, max_keys: int = 10_000, clock: Clock = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1 or max_keys < 1:
            raise ValueError("rate, burst and max_keys must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: LRUCache[str, _Bucket] = LRUCache(maxsize=max_keys)

    def _bucket(self, key: str) -> _Bucket:
        """`key`'s bucket, refilled up to now."""
        moment = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), moment)
        else:
            elapsed = max(0.0, moment - bucket.stamp)
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.stamp = moment
        self._buckets[key] = bucket
        return bucket

    def _wait(self, bucket: _Bucket) -> float:
        return 0.0 if bucket.tokens >= 1.0 else (1.0 - bucket.tokens) / self.rate

    async def check(self, key: str) -> float:
        return self._wait(self._bucket(key))

    async def hit(self, key: str) -> float:
        bucket = self._bucket(key)
        wait = self._wait(bucket)
        if wait == 0.0:
            bucket.tokens -= 1.0
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass(frozen=True)
class Rate:
    """A limit written `N/S`: at most N units at once, refilled at N per S seconds."""

    count: int
    seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 < self.seconds < math.inf:
            raise ValueError(f"a rate needs a positive count and period: {self}")

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}"

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`"20/60"` -> Rate(20, 60.0); ValueError for anything else."""
        count, sep, seconds = text.strip().partition("/")
        if not sep:
            raise ValueError(f"a rate is written N/SECONDS, e.g. 20/60: {text!r}")
        return cls(int(count), float(seconds))

    def limiter(self, *, max_keys: int = 10_000, clock: Clock = time.monotonic) -> MemoryLimiter:
        """A memory limiter enforcing this rate per key."""
        return MemoryLimiter(self.count / self.seconds, self.count, max_keys=max_keys, clock=clock)

"""Rate limits kept in the database, so every instance spends from the same buckets.

A `Limiter` (secure_mcp.common.ratelimit) with the memory limiter's semantics: `burst` units at
once, refilled at `rate` per second. Each bucket is one row holding GCRA's theoretical arrival
time (`tat`: when the bucket would be full again), changed by one atomic upsert per hit:
    allowed  when tat <= now + (burst - 1) / rate
    then     tat = max(tat, now) + 1 / rate
The row's `allowed` column is set in the same statement and read back with RETURNING, so two
instances hitting one bucket at the same moment are serialised by the row, never both let in.
A row whose `tat` has passed is a full bucket, deleted by the periodic cleanup.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from sqlalchemy import case, select

from secure_mcp.oauth.models import RateLimit
from secure_mcp.oauth.storage import Database

Clock = Callable[[], float]
MAX_KEY = 100  # longer keys are stored as their SHA-256


class DatabaseLimiter:
    """Token buckets per key for the limit `name`, shared through `db`."""

    def __init__(
        self, db: Database, name: str, rate: float, burst: int, *, clock: Clock = time.time
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate and burst must be positive")
        self.db = db
        self.name = name
        self.interval = 1.0 / rate  # seconds one unit takes to come back
        self.tolerance = (burst - 1) * self.interval  # how far tat may run ahead of now
        self._clock = clock  # wall time: every instance must agree on it (as for token expiry)

    def _bucket(self, key: str) -> str:
        """The row's key: limit name and key (hashed when long)."""
        if len(key) > MAX_KEY:
            key = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.name}:{key}"

    async def check(self, key: str) -> float:
        moment = self._clock()
        async with self.db.read() as session:
            tat = await session.scalar(
                select(RateLimit.tat).where(RateLimit.bucket == self._bucket(key))
            )
        return 0.0 if tat is None else max(0.0, tat - moment - self.tolerance)

    async def hit(self, key: str) -> float:
        moment = self._clock()
        room = RateLimit.tat <= moment + self.tolerance
        later = case(
            (RateLimit.tat < moment, moment + self.interval), else_=RateLimit.tat + self.interval
        )
        statement = (
            self.db.insert(RateLimit)
            .values(bucket=self._bucket(key), tat=moment + self.interval, allowed=True)
            .on_conflict_do_update(
                index_elements=["bucket"],
                set_={"tat": case((room, later), else_=RateLimit.tat), "allowed": room},
            )
            .returning(RateLimit.tat, RateLimit.allowed)
        )
        async with self.db.write() as session:
            tat, allowed = (await session.execute(statement)).one()
        return 0.0 if allowed else max(0.0, tat - moment - self.tolerance)

"""Replay caches for DPoP proofs (RFC 9449 11.1): each proof is accepted once within its window.

A proof is remembered by the hash of its key and `jti` until its `iat` is too old to pass
again (`Proof.expires_at`). Two stores:

- `MemoryReplayCache`: one process; bounded; when full of live entries it refuses new proofs
  (`ReplayCacheFull`) rather than forgetting one that could then be replayed.
- `SqliteReplayCache`: a SQLite file in a private folder, for several worker processes on one
  machine (INSERT of a unique key; an expired row may be taken over). Several machines need a
  shared store (oauth.py uses its database; see docs/dpop.md).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio.to_thread
from cachetools import TTLCache

from secure_mcp.common.private_files import check_private_dir, check_private_file
from secure_mcp.common.rfc9449 import CLOCK_SKEW, MAX_AGE

WINDOW = MAX_AGE + 2 * CLOCK_SKEW  # the longest a proof can stay acceptable
DEFAULT_SIZE = 100_000  # proofs per window: about 1,400 a second
Clock = Callable[[], float]


class ReplayCacheFull(Exception):
    """The cache holds only live entries: the proof cannot be checked, so it is refused."""


class ReplayCache(Protocol):
    """Where proofs already accepted are remembered."""

    async def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time `key` is seen before `expires_at`; False for a replay."""
        ...


class MemoryReplayCache:
    """This process's proofs, at most `size` at a time."""

    def __init__(self, size: int = DEFAULT_SIZE, clock: Clock = time.time) -> None:
        self._seen: TTLCache[str, bool] = TTLCache(maxsize=size, ttl=WINDOW, timer=clock)
        self._size = size

    async def first_use(self, key: str, expires_at: float) -> bool:
        """Remember `key` for the window (`expires_at` is never later than that)."""
        if key in self._seen:
            return False
        self._seen.expire()
        if len(self._seen) >= self._size:
            raise ReplayCacheFull  # never evict a live entry: it could be replayed
        self._seen[key] = True
        return True


SCHEMA = "CREATE TABLE IF NOT EXISTS proofs (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)"
CLAIM = (
    "INSERT INTO proofs (key, expires_at) VALUES (?, ?) ON CONFLICT(key) DO UPDATE "
    "SET expires_at = excluded.expires_at WHERE proofs.expires_at <= ?"
)
CLEANUP_EVERY = 1000  # inserts between two deletions of expired rows


class SqliteReplayCache:
    """Proofs shared by every process that opens the same file (the workers of one server)."""

    def __init__(self, path: Path, clock: Clock = time.time) -> None:
        check_private_dir(path.parent)
        check_private_file(path)
        path.touch(mode=0o600, exist_ok=True)
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(SCHEMA)
            self._db.commit()
        self._inserts = 0

    def _claim(self, key: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            claimed = self._db.execute(CLAIM, (key, expires_at, now)).rowcount == 1
            self._inserts += 1
            if self._inserts % CLEANUP_EVERY == 0:
                self._db.execute("DELETE FROM proofs WHERE expires_at <= ?", (now,))
            self._db.commit()
        return claimed

    async def first_use(self, key: str, expires_at: float) -> bool:
        """INSERT the key; a live row with the same key means a replay."""
        return await anyio.to_thread.run_sync(self._claim, key, expires_at)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

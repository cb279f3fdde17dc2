"""SQLite for the async engine without a thread hop per statement.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on a worker thread and hands
the result back through the event loop: about 20 hops for one refresh grant, each a GIL handoff
and an event-loop wake-up, which cost more CPU than SQLite itself (profiled: three quarters of a
grant's time). SQLite on a local file answers in microseconds, so here the same aiosqlite API
runs in the calling (event loop) thread, except COMMIT, which waits for the disk (fsync: the
durability of a rotation or a revocation is kept) and so goes to a thread: one hop per write.

What could block the loop is waiting for a lock another process holds: readers in WAL mode do
not wait for writers, this process's writers queue on `Database`'s asyncio lock, and a writer's
`BEGIN IMMEDIATE` that finds another process writing is retried with `asyncio.sleep` (never a
blocking busy wait) for up to `BUSY_WAIT` seconds. The busy timeout left to SQLite itself is
`STATEMENT_BUSY_MS`, the longest the loop can stall in the rare case a reader must wait.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.util import await_only

CONNECT_BUSY_MS = 10_000  # opening: another process may be switching a new file to WAL
STATEMENT_BUSY_MS = 50  # afterwards: what SQLite may block the event loop for
BUSY_WAIT = 10.0  # seconds a writer waits, asynchronously, for another process's write lock


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection API, each call run at once in the calling thread."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        self._connection = self._connector()
        return self

    async def commit(self) -> None:
        """COMMIT on a worker thread: it waits for the disk (fsync), which must not stop the loop.

        The connection is not used meanwhile: its session awaits this commit.
        """
        await asyncio.to_thread(self._conn.commit)

    def __await__(self) -> Any:
        return self._connect().__await__()  # no worker thread is started

    def stop(self) -> None:
        """Close the SQLite connection (there is no thread to stop)."""
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        """Close the SQLite connection."""
        self.stop()


def connector(path: str) -> Callable[[], sqlite3.Connection]:
    """Opens the file: WAL journal, no implicit BEGIN (`begin_immediate` and reads decide)."""

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={CONNECT_BUSY_MS}")  # first: WAL may wait
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA busy_timeout={STATEMENT_BUSY_MS}")
        return connection

    return connect


async def connect(path: str) -> InlineConnection:
    """A connection for SQLAlchemy's `async_creator`."""
    connection: InlineConnection = await InlineConnection(connector(path), iter_chunk_size=64)
    return connection


def begin_immediate(driver: Any, clock: Callable[[], float] = time.monotonic) -> None:
    """`BEGIN IMMEDIATE` (the write lock), waiting asynchronously while another process holds it.

    Runs inside SQLAlchemy's greenlet (its `begin` event), so it may await with `await_only`.
    """
    deadline = clock() + BUSY_WAIT
    delay = 0.002
    while True:
        try:
            driver._conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock() >= deadline:
                raise
        await_only(asyncio.sleep(delay))
        delay = min(delay * 2, 0.1)

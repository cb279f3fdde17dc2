"""SQLite for the async engine without a thread hop per statement.

aiosqlite runs every call (cursor, execute, fetch, close, commit) on a worker thread and hands
the result back through the event loop: about 20 hops for one refresh grant, each a GIL handoff
and an event-loop wake-up, which cost more CPU than SQLite itself (profiled: three quarters of a
grant's time). SQLite on a local file answers in microseconds, so here the same aiosqlite API
runs in the calling (event loop) thread, COMMIT included: it does not wait for the disk, the
group commit below does, in a thread.

Durability is a group commit (`GroupSync`): connections run with `synchronous=NORMAL`, so a
COMMIT appends its frames to the write-ahead log without waiting for the disk, and
`Database.write` then waits, after releasing the write lock, for an fsync of the log that began
after its COMMIT. Writers that commit while one fsync runs share the next: one fsync for a
group of transactions instead of one each inside the write lock. No write block returns (so no
response is sent) before its transaction is on disk, and a failed fsync fails every write of its
group. The log is appended in order, so that fsync also makes durable every transaction
committed before it (another request's that this one read, or another process's).

What could block the loop is waiting for a lock another process holds: readers in WAL mode do
not wait for writers, this process's writers queue on `Database`'s asyncio lock, and a writer's
`BEGIN IMMEDIATE` that finds another process writing is retried with `asyncio.sleep` (never a
blocking busy wait) for up to `BUSY_WAIT` seconds. The busy timeout left to SQLite itself is
`STATEMENT_BUSY_MS`, the longest the loop can stall in the rare case a reader must wait.
"""

from __future__ import annotations

import asyncio
import os
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
        # durable at `GroupSync.wait`, which every write awaits before it returns; so COMMIT
        # does not wait for the disk and runs in the loop's thread, and checkpoints (which do
        # wait for it) run in `GroupSync`'s thread
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA wal_autocheckpoint=0")
        # the log restarts after a complete checkpoint: truncated then, its size is what
        # was written since (`GroupSync.fsync` checkpoints by that size)
        connection.execute("PRAGMA journal_size_limit=0")
        connection.execute(f"PRAGMA busy_timeout={STATEMENT_BUSY_MS}")
        return connection

    return connect


async def connect(path: str) -> InlineConnection:
    """A connection for SQLAlchemy's `async_creator`."""
    connection: InlineConnection = await InlineConnection(connector(path), iter_chunk_size=64)
    return connection


def begin_immediate(driver: Any, clock: Callable[[], float] = time.monotonic) -> None:
    """`begin_writing` from inside SQLAlchemy's greenlet (its `begin` event), via `await_only`."""
    await_only(begin_writing(driver._conn, clock))


async def begin_writing(
    connection: sqlite3.Connection, clock: Callable[[], float] = time.monotonic
) -> None:
    """`BEGIN IMMEDIATE` (the write lock), waiting asynchronously while another process holds it."""
    deadline = clock() + BUSY_WAIT
    delay = 0.002
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or clock() >= deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


class GroupSync:
    """Makes committed transactions durable, one fsync of the write-ahead log per group.

    `wait()` returns once an fsync that began after the call has completed: a transaction
    committed before the call is then on disk. Callers arriving while an fsync runs share the
    next one. An fsync that fails raises its OSError in every caller of its group, and in every
    caller after it: after a failed fsync the kernel may have dropped the unwritten pages, so
    nothing written since can be called durable (as PostgreSQL stops on one) until a restart.
    """

    checkpoint_bytes = 4 << 20  # SQLite's own automatic checkpoint: 1,000 pages of 4 KiB

    def __init__(self, path: str) -> None:
        self.path = path
        self.wal_path = path + "-wal"
        self._next: asyncio.Future[None] | None = None  # the fsync new callers wait for
        self._running: asyncio.Task[None] | None = None
        self.failed: OSError | None = None

    async def wait(self) -> None:
        """Return when everything committed before this call is on disk."""
        if self.failed is not None:
            raise OSError(self.failed.errno, f"an earlier fsync failed: {self.failed}")
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        group = self._next
        if self._running is None:
            self._running = asyncio.create_task(self._flush())
        await asyncio.shield(group)

    async def _flush(self) -> None:
        """fsync for each group in turn, until no caller waits."""
        try:
            while self._next is not None:
                group, self._next = self._next, None
                try:
                    await asyncio.to_thread(self.fsync)
                except OSError as exc:
                    self.failed = exc
                    group.set_exception(exc)
                    group.exception()  # retrieved: a group whose callers left logs nothing
                else:
                    group.set_result(None)
        finally:
            self._running = None

    def fsync(self) -> None:
        """fsync the write-ahead log (the file's data, whichever descriptor wrote it), and copy
        it into the database once it has grown past `checkpoint_bytes`."""
        descriptor = os.open(self.wal_path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
            grown = os.fstat(descriptor).st_size > self.checkpoint_bytes
        finally:
            os.close(descriptor)
        if grown:
            self.checkpoint()

    def checkpoint(self) -> None:
        """A PASSIVE checkpoint (writers go on meanwhile; it syncs the log and the database)."""
        connection = connector(self.path)()
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()

"""SQLite's group commit: a write returns only once an fsync of the write-ahead log that began
after its COMMIT has completed; concurrent writes share one fsync; a failed fsync fails every
write of its group and every later one, and a refresh grant then never answers 200."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from secure_mcp.oauth import sqlite_inline, tokens
from secure_mcp.oauth.models import TokenFamily
from secure_mcp.oauth.statements import Prepared
from secure_mcp.oauth.storage import Database, now
from tests.support.oauth_harness import Harness


async def _family(db: Database, name: str) -> None:
    async with db.write() as session:
        tokens.start_family(session, name, now() + 60)


_NEW_FAMILY = Prepared(insert(tokens.FAMILIES))


async def _family_by_statement(db: Database, name: str) -> None:
    async with db.transaction() as statements:  # the refresh grant's way, on the driver
        row = {"family_id": name, "revoked": False, "expires_at": now() + 60}
        await statements.insert(_NEW_FAMILY, [row])


Write = Callable[[Database, str], Awaitable[None]]


@pytest.fixture(params=["session", "statements"])
def write(request: pytest.FixtureRequest) -> Write:
    """A write through a session (`Database.write`), or `Database.transaction`'s statements."""
    return _family if request.param == "session" else _family_by_statement


async def _committed(db: Database, name: str) -> bool:
    async with db.read() as session:
        found = await session.scalar(select(TokenFamily).where(TokenFamily.family_id == name))
    return found is not None


async def _until(done: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(1000):
        if await done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")  # pragma: no cover - a failing test's message


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path)
    await database.start()
    yield database
    await database.close()


async def test_the_connections_leave_durability_to_the_group_fsync(db: Database) -> None:
    async with db.read() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        level = raw.driver_connection._conn.execute("PRAGMA synchronous").fetchone()[0]
        pages = raw.driver_connection._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert level == 1  # NORMAL: the COMMIT does not wait for the disk; `GroupSync` does
    assert pages == 0  # nor does a checkpoint in it: `GroupSync.fsync` runs them
    assert db._durable is not None
    assert db._durable.wal_path == str(db.path) + "-wal"


async def test_a_write_returns_only_after_an_fsync_begun_after_its_commit(
    db: Database, monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    gates = [threading.Event(), threading.Event()]
    began: list[int] = []
    real = sqlite_inline.GroupSync.fsync

    def held_fsync(self: sqlite_inline.GroupSync) -> None:
        began.append(len(began))
        gates[len(began) - 1].wait(10)
        real(self)

    monkeypatch.setattr(sqlite_inline.GroupSync, "fsync", held_fsync)
    first = asyncio.create_task(write(db, "a"))

    async def fsync_began() -> bool:
        return bool(began)

    await _until(fsync_began)
    second = asyncio.create_task(write(db, "b"))  # commits while the first fsync runs
    await _until(lambda: _committed(db, "b"))
    await asyncio.sleep(0.05)
    assert not first.done()  # committed, not yet durable: no answer
    assert not second.done()
    gates[0].set()
    await asyncio.wait_for(first, 10)
    await asyncio.sleep(0.05)
    assert not second.done()  # the fsync under way began before its commit
    assert began == [0, 1]
    gates[1].set()
    await asyncio.wait_for(second, 10)


async def test_concurrent_writes_share_one_fsync(
    db: Database, monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    calls: list[None] = []
    real = sqlite_inline.GroupSync.fsync

    def slow_fsync(self: sqlite_inline.GroupSync) -> None:
        calls.append(None)
        threading.Event().wait(0.2)  # a slow disk: the others commit meanwhile
        real(self)

    monkeypatch.setattr(sqlite_inline.GroupSync, "fsync", slow_fsync)
    await asyncio.gather(*(write(db, f"f{i}") for i in range(8)))
    # the first write's, then one for the seven that came during it; on the driver all eight
    # commit before the first fsync starts (no await between BEGIN and COMMIT): one for all
    assert len(calls) == (2 if write is _family else 1)
    assert all([await _committed(db, f"f{i}") for i in range(8)])


async def test_a_failed_fsync_fails_its_whole_group_and_every_later_write(
    db: Database, monkeypatch: pytest.MonkeyPatch, write: Write
) -> None:
    def failing_fsync(self: sqlite_inline.GroupSync) -> None:
        threading.Event().wait(0.1)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sqlite_inline.GroupSync, "fsync", failing_fsync)
    results = await asyncio.gather(*(write(db, f"f{i}") for i in range(4)), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    monkeypatch.undo()  # the disk answers again: still refused until a restart
    with pytest.raises(OSError, match="an earlier fsync failed"):
        await write(db, "later")


async def test_a_caller_that_leaves_does_not_stop_its_group(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = sqlite_inline.GroupSync.fsync

    def held_fsync(self: sqlite_inline.GroupSync) -> None:
        gate.wait(10)
        real(self)

    monkeypatch.setattr(sqlite_inline.GroupSync, "fsync", held_fsync)
    leaving = asyncio.create_task(_family(db, "a"))
    staying = asyncio.create_task(_family(db, "b"))
    await asyncio.sleep(0.1)
    leaving.cancel()  # a client that hung up
    gate.set()
    await asyncio.wait_for(staying, 10)
    assert leaving.cancelled()


async def test_a_refresh_grant_whose_fsync_fails_is_never_answered_200(
    oauth: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = await oauth.new_flow()
    issued = (await oauth.redeem(flow)).json()

    def failing_fsync(self: sqlite_inline.GroupSync) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(sqlite_inline.GroupSync, "fsync", failing_fsync)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": issued["refresh_token"],
        "client_id": flow.client["client_id"],
    }
    with pytest.raises(OSError, match="Input/output error"):  # the server error, not tokens
        await oauth.token(form)


async def test_the_log_is_checkpointed_in_the_sync_thread_once_it_has_grown(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert db._durable is not None
    checkpoints: list[None] = []
    real = sqlite_inline.GroupSync.checkpoint

    def counted(self: sqlite_inline.GroupSync) -> None:
        checkpoints.append(None)
        real(self)

    monkeypatch.setattr(sqlite_inline.GroupSync, "checkpoint", counted)
    await _family(db, "small")
    assert checkpoints == []  # a small log is left to grow
    size = await asyncio.to_thread(os.path.getsize, db._durable.wal_path)
    monkeypatch.setattr(db._durable, "checkpoint_bytes", size - 1)
    await _family(db, "grown")
    assert checkpoints == [None]
    assert await _committed(db, "grown")
    await _family(db, "after")  # the log restarts, truncated: no checkpoint at every write
    assert checkpoints == [None]
    assert await asyncio.to_thread(os.path.getsize, db._durable.wal_path) < size

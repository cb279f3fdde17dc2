"""The performance changes keep their guarantees: SQLite without thread hops, through a session
or `Database.transaction`'s own connection, still waits for another process's write lock
(without stopping the event loop) and still rolls back an abandoned or failed transaction;
cached resource-server credentials and client rows never accept a wrong secret and never
outlive their few seconds."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from secure_mcp.oauth import sqlite_inline, tokens
from secure_mcp.oauth.clients import KnownClients
from secure_mcp.oauth.models import Client, ResourceServer, Token
from secure_mcp.oauth.resource_servers import VerifiedCredentials
from secure_mcp.oauth.storage import Database, _sqlite_busy, token_hash
from tests.support.oauth_harness import Harness


async def longest_stall(seconds: float) -> float:
    """The longest the event loop took to wake a 10 ms sleeper, over `seconds`."""
    loop = asyncio.get_running_loop()
    end, worst = loop.time() + seconds, 0.0
    while loop.time() < end:
        before = loop.time()
        await asyncio.sleep(0.01)
        worst = max(worst, loop.time() - before)
    return worst


async def test_a_writer_waits_for_another_process_without_stopping_the_loop(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path)
    await db.start()
    holder = sqlite3.connect(tmp_path / "oauth.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing

    async def write() -> None:
        async with db.write() as session:
            await session.execute(text("DELETE FROM rate_limits"))

    writer = asyncio.create_task(write())
    stall = await longest_stall(0.5)
    assert not writer.done()  # waiting for the lock...
    assert stall < 0.25  # ...without stopping the loop (SQLite's own wait is 50 ms at most)
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(writer, 5)
    await db.close()


async def test_a_writer_gives_up_after_the_busy_wait(tmp_path: Path) -> None:
    db = Database(tmp_path)
    await db.start()
    holder = sqlite3.connect(tmp_path / "oauth.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    times = iter([0.0, 0.0, sqlite_inline.BUSY_WAIT + 1])
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection

        def begin() -> None:
            sqlite_inline.begin_immediate(driver, clock=lambda: next(times))

        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await conn.run_sync(lambda _: begin())
    holder.execute("COMMIT")
    holder.close()
    await db.close()


async def test_other_sqlite_errors_are_not_retried(tmp_path: Path) -> None:
    db = Database(tmp_path)
    await db.start()
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        driver._conn.execute("BEGIN")  # a transaction already open: BEGIN again is an error
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            await conn.run_sync(lambda _: sqlite_inline.begin_immediate(driver))
        driver._conn.execute("ROLLBACK")
    await db.close()


async def test_an_abandoned_write_is_rolled_back_at_check_in(tmp_path: Path) -> None:
    db = Database(tmp_path)
    await db.start()
    async with db.engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        driver._conn.execute("BEGIN IMMEDIATE")  # left open, as by a cancelled request
        assert driver.in_transaction
    async with db.write() as session:  # would wait for ever if the lock were still held
        await session.execute(text("DELETE FROM rate_limits"))
    await db.close()


async def test_the_inline_connection_closes(tmp_path: Path) -> None:
    connection = await sqlite_inline.connect(str(tmp_path / "x.sqlite3"))
    assert connection.in_transaction is False
    await connection.close()
    await connection.close()  # idempotent
    with pytest.raises(ValueError, match="no active connection"):
        await connection.execute("SELECT 1")
    with pytest.raises(ValueError, match="Connection closed"):
        await connection._execute(lambda: None)


def test_busy_is_recognised_raw_or_wrapped() -> None:
    assert _sqlite_busy(sqlite3.OperationalError("database is locked"))
    assert not _sqlite_busy(sqlite3.OperationalError("no such table: x"))
    assert not _sqlite_busy(ValueError("database is locked"))


def server(client_id: str = "rs-1") -> ResourceServer:
    return ResourceServer(client_id=client_id, resource="http://r/mcp", secret_hash="h")


def test_verified_credentials_need_the_same_secret_and_expire() -> None:
    now = [100.0]
    cache = VerifiedCredentials(ttl=10, size=2, clock=lambda: now[0])
    cache.put(server(), token_hash("right"))
    assert cache.get("rs-1", token_hash("right")) is not None
    assert cache.get("rs-1", token_hash("wrong")) is None
    assert cache.get("rs-2", token_hash("right")) is None
    now[0] += 10
    assert cache.get("rs-1", token_hash("right")) is None  # expired
    for name in ("a", "b", "c"):
        cache.put(server(name), token_hash(name))
    assert cache.get("a", token_hash("a")) is None  # the oldest made room
    assert cache.get("c", token_hash("c")) is not None


async def test_introspection_checks_a_changed_secret_in_the_database(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    token = (await oauth.redeem(flow)).json()["access_token"]
    assert (await oauth.introspect(token))["active"] is True  # credentials now cached
    client_id, _ = oauth.resource_auth()
    wrong = await oauth.http.post("/introspect", data={"token": token}, auth=(client_id, "nope"))
    assert wrong.status_code == 401
    assert (await oauth.introspect(token))["active"] is True


async def test_known_clients_keep_only_registered_rows(oauth: Harness) -> None:
    registered = await oauth.register()
    db = Database(oauth.settings.data_dir)
    known = KnownClients(ttl=60)
    assert await known.find(db, "no-such-client") is None
    found = await known.find(db, registered["client_id"])
    assert found is not None
    async with db.write() as session:  # even gone from the database, it is remembered
        row = await session.scalar(select(Client).where(Client.client_id == found.client_id))
        await session.delete(row)
    again = await known.find(db, registered["client_id"])
    assert again is found
    document = "https://app.example/client.json"
    assert await known.find(db, document) is None  # no document source: nothing, not kept
    await db.close()


async def test_the_token_endpoint_authenticates_from_the_cache(oauth: Harness) -> None:
    client = await oauth.register(token_endpoint_auth_method="client_secret_post")
    flow_data = {"client_id": client["client_id"], "grant_type": "refresh_token"}
    for secret in (client["client_secret"], "wrong-secret"):
        answer = await oauth.token({**flow_data, "refresh_token": "x", "client_secret": secret})
        assert answer.status_code == (400 if secret != "wrong-secret" else 401)


async def test_a_revocation_is_seen_by_the_very_next_introspection(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    tokens = (await oauth.redeem(flow)).json()
    for _ in range(3):  # the reader connection has answered before the write
        assert (await oauth.introspect(tokens["access_token"]))["active"] is True
    revoke = {"token": tokens["refresh_token"], "client_id": flow.client["client_id"]}
    assert (await oauth.http.post("/revoke", data=revoke)).status_code == 200
    assert await oauth.introspect(tokens["access_token"]) == {"active": False}


async def test_rows_read_directly_have_the_columns_types(tmp_path: Path) -> None:
    db = Database(tmp_path)
    await db.start()
    async with db.write() as session:
        session.add(server("rs-9"))
        session.add(
            Token(token_hash="t", kind="access", family_id="f", client_id="c", subject="s",
                  scope="a", resource="r", issued_at=1, expires_at=2, revoked=True, rotated=False)
        )  # fmt: skip
    token = await db.row(Token, "token_hash", "t")
    assert token is not None
    assert (token["revoked"], token["rotated"]) == (True, False)
    assert isinstance(token["revoked"], bool)  # converted as a session would
    found = await db.row(ResourceServer, "client_id", "rs-9")
    assert found == {"client_id": "rs-9", "resource": "http://r/mcp", "secret_hash": "h"}
    assert await db.row(ResourceServer, "client_id", "nobody") is None
    await db.close()
    await db.close()  # idempotent


# `Database.transaction` on SQLite: the statements on the writer's own connection

TOKEN = {
    "token_hash": token_hash("t"), "kind": "access", "family_id": "f", "client_id": "c",
    "subject": "demo", "scope": "s", "resource": "r", "issued_at": 1, "expires_at": 2,
    "revoked": False, "rotated": False, "jkt": None,
}  # fmt: skip


async def _count(db: Database) -> int:
    async with db.read() as session:
        return len((await session.scalars(select(Token))).all())


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path)
    await database.start()
    yield database
    await database.close()


class FailingCommit:
    """A sqlite3 connection whose COMMIT fails (a full disk, say)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self.connection.execute(sql, *args)


async def test_a_commit_that_fails_is_rolled_back(lite: Database) -> None:
    async with lite.transaction():
        pass  # opens the writer connection
    assert lite._writer is not None
    real = lite._writer
    lite._writer = FailingCommit(real)  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        async with lite.transaction() as statements:
            await statements.insert(tokens._INSERT_TOKENS, [TOKEN])
    assert not real.in_transaction
    lite._writer = real
    assert await _count(lite) == 0
    async with lite.transaction() as statements:
        await statements.insert(tokens._INSERT_TOKENS, [TOKEN])
    assert await _count(lite) == 1


async def test_a_transaction_waits_for_another_process_without_stopping_the_loop(
    lite: Database, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "oauth.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing

    async def write() -> None:
        async with lite.transaction() as statements:
            await statements.insert(tokens._INSERT_TOKENS, [TOKEN])

    writer = asyncio.create_task(write())
    stall = await longest_stall(0.5)
    assert not writer.done()  # waiting for the lock...
    assert stall < 0.25  # ...without stopping the loop
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(writer, 5)
    assert await _count(lite) == 1


async def test_begin_writing_gives_up_after_the_busy_wait(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    writer = sqlite_inline.connector(str(path))()
    times = iter([0.0, 0.0, sqlite_inline.BUSY_WAIT + 1])
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await sqlite_inline.begin_writing(writer, clock=lambda: next(times))
    assert not writer.in_transaction
    holder.execute("COMMIT")
    writer.execute("BEGIN")  # a transaction already open: not a lock to wait for
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        await sqlite_inline.begin_writing(writer)
    writer.close()
    holder.close()

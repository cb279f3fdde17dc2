"""The grant path's prepared statements: the same rows, counts and conversions whether they run
on the driver (`Database.transaction`: sqlite3 or asyncpg) or on a session (beside the ORM), on
SQLite and PostgreSQL; a transaction is all or nothing and leaves no lock behind; PostgreSQL's
pooled connections are kept and never handed out inside a transaction. (SQLite's own waiting for
another process's lock: `test_fast_paths.py`.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from secure_mcp.oauth import tokens
from secure_mcp.oauth.models import Token
from secure_mcp.oauth.statements import Compiled, Prepared, SessionStatements, Statements
from secure_mcp.oauth.storage import Database, now, token_hash
from tests.support.postgres import Cluster

ROW: dict[str, Any] = {
    "token_hash": token_hash("first"), "kind": tokens.REFRESH, "family_id": "fam",
    "client_id": "c", "subject": "demo", "scope": "weather:read", "resource": "r",
    "issued_at": 1_700_000_000, "expires_at": 1_700_003_600, "revoked": False, "rotated": False,
    "jkt": None,
}  # fmt: skip
OTHER = {**ROW, "token_hash": token_hash("second"), "kind": tokens.ACCESS, "jkt": "k" * 43}
NEW_FAMILY = Prepared(insert(tokens.FAMILIES))


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path, url=database_url)
    await database.start()
    yield database
    await database.close()


@pytest.fixture(params=["transaction", "session"])
def way(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def statements_of(db: Database, way: str) -> AsyncIterator[Statements]:
    """`Database.transaction` (on the driver on SQLite), or a session's (`SessionStatements`)."""
    if way == "transaction":
        async with db.transaction() as statements:
            yield statements
    else:
        async with db.write() as session:
            yield SessionStatements(session)


async def _count(db: Database) -> int:
    async with db.read() as session:
        return len((await session.scalars(select(Token))).all())


async def test_rows_go_in_and_come_back_with_their_python_types(db: Database, way: str) -> None:
    async with statements_of(db, way) as statements:
        await statements.insert(tokens._INSERT_TOKENS, [ROW, OTHER])
    async with statements_of(db, way) as statements:
        first = await statements.first(tokens._TOKEN_BY_HASH, {"hashed": ROW["token_hash"]})
        other = await statements.first(tokens._TOKEN_BY_HASH, {"hashed": OTHER["token_hash"]})
        missing = await statements.first(tokens._TOKEN_BY_HASH, {"hashed": "0" * 64})
    assert first == ROW
    assert other == OTHER
    assert first is not None
    assert first["revoked"] is False  # a bool, not SQLite's 0
    assert missing is None
    assert await db.row(Token, "token_hash", ROW["token_hash"]) == ROW  # and as `row` reads it


async def test_updates_count_only_the_rows_their_conditions_match(db: Database, way: str) -> None:
    async with statements_of(db, way) as statements:
        await statements.insert(tokens._INSERT_TOKENS, [ROW])
        await statements.insert(
            NEW_FAMILY, [{"family_id": "fam", "revoked": True, "expires_at": 1}]
        )
    async with statements_of(db, way) as statements:
        assert await tokens.rotate(statements, ROW["token_hash"])
        assert not await tokens.rotate(statements, ROW["token_hash"])  # `rotated IS false`
        assert not await tokens.rotate(statements, "0" * 64)
        assert not await tokens.hold_family(statements, "fam", now())  # revoked: not held
        assert await tokens.refresh_row(statements, "first") == tokens.Stored(
            **{**ROW, "rotated": True}
        )
        assert await tokens.refresh_row(statements, "") is None
        assert await tokens.refresh_row(statements, "x" * 513) is None


async def test_an_access_token_is_no_refresh_token(db: Database, way: str) -> None:
    async with statements_of(db, way) as statements:
        await statements.insert(tokens._INSERT_TOKENS, [OTHER])
        assert await tokens.refresh_row(statements, "second") is None


async def test_a_transaction_that_fails_writes_nothing_and_holds_no_lock(
    db: Database, way: str
) -> None:
    async def fail_midway() -> None:
        async with statements_of(db, way) as statements:
            await statements.insert(tokens._INSERT_TOKENS, [ROW])
            raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        await fail_midway()
    assert await _count(db) == 0
    async with statements_of(db, way) as statements:  # would wait for ever on a held lock
        await statements.insert(tokens._INSERT_TOKENS, [ROW])
    assert await _count(db) == 1


async def test_a_duplicate_key_fails_the_whole_transaction(db: Database, way: str) -> None:
    async with statements_of(db, way) as statements:
        await statements.insert(tokens._INSERT_TOKENS, [ROW])
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        async with statements_of(db, way) as statements:
            await statements.insert(tokens._INSERT_TOKENS, [OTHER, ROW])  # OTHER first
    assert await _count(db) == 1


def test_a_missing_parameter_is_an_error_never_a_null() -> None:
    compiled = Compiled.of(tokens._INSERT_TOKENS.statement, sqlite_inline_dialect())
    with pytest.raises(KeyError, match="jkt"):
        compiled.arguments({key: value for key, value in ROW.items() if key != "jkt"})
    rotate = Compiled.of(tokens._ROTATE.statement, sqlite_inline_dialect())
    assert rotate.arguments({"hashed": "h"}) == (1, "h")  # the fixed `rotated=True`, converted


def sqlite_inline_dialect() -> Any:
    from sqlalchemy.dialects.sqlite import aiosqlite

    return aiosqlite.dialect()


async def test_a_driver_connection_left_inside_a_transaction_is_discarded(
    postgres: Cluster, tmp_path: Path
) -> None:
    db = Database(tmp_path, url=postgres.new_database())
    await db.start()
    async with db._driver() as driver:
        await driver.execute("BEGIN")  # as if its ROLLBACK could not run
        left = driver
    async with db._driver() as driver:
        assert driver is not left  # never handed out again
        assert not driver.is_in_transaction()
    await db.close()


async def test_concurrent_reads_keep_their_connections(postgres: Cluster, tmp_path: Path) -> None:
    """Eight requests at a time reuse eight connections (SQLAlchemy's default pool kept five and
    opened and closed the others at every request: a new PostgreSQL backend each)."""
    db = Database(tmp_path, url=postgres.new_database())
    await db.start()
    backends: set[int] = set()
    gate = asyncio.Barrier(8)

    async def read() -> None:
        async with db._driver() as driver:
            await gate.wait()  # all eight hold a connection at once
            backends.add(driver.get_server_pid())

    for _ in range(3):
        await asyncio.gather(*(read() for _ in range(8)))
    assert len(backends) == 8
    await db.close()

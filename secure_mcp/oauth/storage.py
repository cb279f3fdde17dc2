"""The database through SQLAlchemy async: SQLite (default) or PostgreSQL shared by instances.

Correctness across processes comes from the database itself: conditional UPDATEs and DELETEs
(codes, refresh tokens, sign-ins), upserts on unique keys (consents, document clients, rate
limits, shared secrets), the token family row as a lock, and transaction-scoped advisory locks
around global bounds. On SQLite every write transaction is `BEGIN IMMEDIATE` (one writer at a
time, even from another process); an asyncio lock only spares SQLite's busy-wait in process.
PostgreSQL runs at READ COMMITTED with no process-local lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.pool import PoolResetState

from secure_mcp.common.private_files import ensure_private_dir
from secure_mcp.oauth import schema, sqlite_inline
from secure_mcp.oauth.models import (
    AuthorizationCode,
    Base,
    Client,
    Consent,
    DpopProof,
    PendingAuthorization,
    RateLimit,
    Token,
    TokenFamily,
    UsedAssertion,
)
from secure_mcp.oauth.statements import (
    AsyncpgStatements,
    Prepared,
    SqliteStatements,
    Statements,
)

DB_FILE = "oauth.sqlite3"
DEFAULT_UNUSED_CLIENT_TTL = 24 * 3600
CONNECT_TIMEOUT = 10.0  # seconds to reach PostgreSQL before giving up with one line
# Connections kept open to PostgreSQL per instance. Beyond them SQLAlchemy opens up to 10 more
# and closes each after use: with its default of 5, eight concurrent introspections already
# opened and closed a connection per request (a new PostgreSQL backend each: most of their CPU)
POSTGRES_POOL_SIZE = 20
SQLITE_START_ATTEMPTS = 100  # x 0.1 s: instances starting together on one new SQLite file
WRITE = "secure_mcp_write"  # execution option: this connection's transactions write (SQLite)


class StorageError(Exception):
    """The database cannot be used: unreachable, refused, or of a newer schema (one line)."""


def token_hash(value: str) -> str:
    """SHA-256 hex of a high-entropy token or secret: what the database keeps."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def now() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())


def lock_key(name: str) -> int:
    """A stable 32-bit key for a PostgreSQL advisory lock named `name`."""
    return zlib.crc32(f"secure-mcp-oauth:{name}".encode())


def _sqlite_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock at BEGIN: no lost update between two processes.

    Reads emit nothing (each statement is its own snapshot, as with the driver's default): every
    read is one statement. The connection opens with no implicit BEGIN (`sqlite_inline`).
    """
    if conn.get_execution_options().get(WRITE, False):
        sqlite_inline.begin_immediate(conn.connection.driver_connection)


def _sqlite_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """At check-in, roll back a connection still inside a transaction, and only such a one.

    Reads never open one (`_sqlite_begin`) and writes end in COMMIT or ROLLBACK, so the pool's
    unconditional ROLLBACK would cost every read a statement for nothing; a write interrupted
    before its end (a cancelled request) is still rolled back here.
    """
    reset = state.asyncio_safe and not state.transaction_was_reset
    if reset and dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


class Database:
    """The authorization server's database: `url`, or `<data_dir>/oauth.sqlite3` without one."""

    def __init__(
        self,
        data_dir: Path,
        unused_client_ttl: int = DEFAULT_UNUSED_CLIENT_TTL,
        *,
        url: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.path: Path | None = None if url else data_dir / DB_FILE
        self.url = url or f"sqlite+aiosqlite:///{data_dir / DB_FILE}"
        self.unused_client_ttl = unused_client_ttl
        self.engine = _engine(self.url)
        self.dialect = self.engine.dialect.name  # "sqlite" or "postgresql"
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writers = async_sessionmaker(
            self.engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )
        # SQLite has one writer at a time anyway: waiting here is cheaper than its busy loop
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._durable: sqlite_inline.GroupSync | None = None  # SQLite's group commit
        if self.dialect == "sqlite":
            self._durable = sqlite_inline.GroupSync(_sqlite_file(self.url))
        self._reader: sqlite3.Connection | None = None  # `row` on SQLite
        self._writer: sqlite3.Connection | None = None  # `transaction` on SQLite
        self._row_selects: dict[tuple[str, str], Prepared] = {}  # `row`: built once

    @property
    def shown_url(self) -> str:
        """The URL with its password hidden, for the banner and messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    async def start(self) -> None:
        """Bring the schema to this version (one instance at a time), then drop expired rows."""
        await self.migrate()
        await self.cleanup()

    async def migrate(self) -> None:
        """Apply the migrations; StorageError when unreachable or of a newer schema."""
        if self.path is not None:
            ensure_private_dir(self.path.parent)
            self.path.touch(mode=0o600, exist_ok=True)
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.engine.execution_options(**{WRITE: True}).connect() as conn:
                    await conn.run_sync(schema.upgrade)
                return
            except schema.SchemaTooNew as exc:
                raise StorageError(str(exc)) from None
            except (DBAPIError, sqlite3.OperationalError, OSError, TimeoutError) as exc:
                if _sqlite_busy(exc) and attempt < SQLITE_START_ATTEMPTS:
                    await asyncio.sleep(0.1)  # another process is switching the file to WAL
                    continue
                reason = _reason(exc)
                raise StorageError(f"cannot use the database {self.shown_url}: {reason}") from None

    async def close(self) -> None:
        """Close every connection."""
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None
        await self.engine.dispose()

    async def row(self, model: type[Base], key: str, value: str) -> dict[str, Any] | None:
        """The row of `model` whose column `key` is `value` (its primary key), or None.

        The hottest read (introspection: the token by its hash): one prepared SELECT on the
        driver (`statements`), where a session costs a millisecond of SQLAlchemy's async
        machinery; values converted by the columns' own types, as a session would. On SQLite on
        a connection of this thread's own, on PostgreSQL on a pooled connection's asyncpg.
        """
        prepared = self._row_selects.get((model.__tablename__, key))
        if prepared is None:
            table = model.__table__
            prepared = Prepared(select(table).where(table.c[key] == bindparam("value")))
            self._row_selects[(model.__tablename__, key)] = prepared
        if self.dialect != "sqlite":
            # on the driver, outside a transaction: the one statement is its own, no BEGIN nor
            # ROLLBACK
            async with self._driver() as driver:
                return await AsyncpgStatements(driver, self.engine.dialect).first(
                    prepared, {"value": value}
                )
        if self._reader is None:
            self._reader = self._connect_sqlite()
        # the statement is reset once read: no read snapshot outlives it
        return await SqliteStatements(self._reader, self.engine.dialect).first(
            prepared, {"value": value}
        )

    def _connect_sqlite(self) -> sqlite3.Connection:
        """A connection of this process's own to the SQLite file (WAL, no implicit BEGIN)."""
        return sqlite_inline.connector(_sqlite_file(self.url))()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading."""
        async with self.sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed at block end (rolled back on error); the block returns
        only once the transaction is durable (on SQLite, at a group commit's fsync, waited for
        after the write lock is released; an OSError when that fsync fails)."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            session = await stack.enter_async_context(self._writers())
            await stack.enter_async_context(session.begin())
            yield session
        if self._durable is not None:
            await self._durable.wait()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Statements]:
        """One write transaction of `Prepared` statements, as `write`: committed at block end,
        rolled back on error, and the block returns only once it is durable.

        The statements run on the driver, without SQLAlchemy's per-statement machinery
        (`statements`): on SQLite on this process's writer connection (under the same lock as
        `write`'s sessions, and `BEGIN IMMEDIATE` as theirs); on PostgreSQL in an asyncpg
        transaction on a pooled connection (READ COMMITTED, as `write`'s).
        """
        if self._write_lock is None or self._durable is None:
            async with self._driver() as driver, driver.transaction(isolation="read_committed"):
                yield AsyncpgStatements(driver, self.engine.dialect)
            return
        async with self._write_lock:
            if self._writer is None:
                self._writer = self._connect_sqlite()
            connection = self._writer
            await sqlite_inline.begin_writing(connection)
            try:
                yield SqliteStatements(connection, self.engine.dialect)
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:  # an error, or a COMMIT that failed
                    connection.execute("ROLLBACK")
        await self._durable.wait()

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled connection's asyncpg connection, outside any transaction of SQLAlchemy's.

        Given back to the pool as it was taken: one still inside a transaction (a rollback
        that could not run) is discarded, never handed to the next user.
        """
        async with self.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None  # a checked-out connection
            try:
                yield driver
            finally:
                if driver.is_in_transaction():
                    await conn.invalidate()

    def insert(self, model: type[Base]) -> Any:
        """An INSERT for `model` in this dialect, with `on_conflict_do_update/_nothing`."""
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        return dialect.insert(model)

    async def serialize(self, session: AsyncSession, name: str) -> None:
        """Until this transaction ends, be the only one holding `name` in every instance.

        PostgreSQL: a transaction advisory lock; SQLite: BEGIN IMMEDIATE already serialises.
        """
        if self.dialect == "postgresql":
            await session.execute(select(_xact_lock(name)))

    async def cleanup(self) -> int:
        """Delete expired rows, and registrations no user allowed in time; return the count.

        One instance at a time; rows another transaction holds are left for the next round
        (SKIP LOCKED), so cleanup never waits for, or deadlocks with, a grant.
        """
        moment = now()
        removed = 0
        async with self.write() as session:
            if self.dialect == "postgresql":
                got = await session.scalar(select(_try_xact_lock("cleanup")))
                if not got:
                    return 0
            unused = Client.authorized_at.is_(None) & (
                Client.issued_at < moment - self.unused_client_ttl
            )
            expired: list[tuple[type[Base], ColumnElement[bool], InstrumentedAttribute[Any]]] = [
                (
                    AuthorizationCode,
                    AuthorizationCode.expires_at < moment,
                    AuthorizationCode.code_hash,
                ),
                (Token, Token.expires_at < moment, Token.token_hash),
                (TokenFamily, TokenFamily.expires_at < moment, TokenFamily.family_id),
                (Consent, Consent.expires_at < moment, Consent.id),
                (
                    PendingAuthorization,
                    PendingAuthorization.expires_at < moment,
                    PendingAuthorization.id,
                ),
                (RateLimit, RateLimit.tat < moment, RateLimit.bucket),
                (DpopProof, DpopProof.expires_at < moment, DpopProof.key),
                (UsedAssertion, UsedAssertion.expires_at < moment, UsedAssertion.jti_hash),
                (Client, unused, Client.client_id),
            ]
            for table, condition, key in expired:
                doomed = select(key).where(condition).with_for_update(skip_locked=True)
                result = await session.execute(delete(table).where(key.in_(doomed)))
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed


def _xact_lock(name: str) -> Any:
    """`pg_advisory_xact_lock(key)`: waits for the lock, held until the transaction ends."""
    return func.pg_advisory_xact_lock(lock_key(name))


def _try_xact_lock(name: str) -> Any:
    """`pg_try_advisory_xact_lock(key)`: true when taken, false when another holds it."""
    return func.pg_try_advisory_xact_lock(lock_key(name))


def _engine(url: str) -> AsyncEngine:
    """The engine for `url`: SQLite with WAL and explicit BEGINs, or PostgreSQL with a timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(
            url,
            async_creator=functools.partial(sqlite_inline.connect, _sqlite_file(url)),
            pool_reset_on_return=None,  # `_sqlite_reset` rolls back only an open transaction
        )
        event.listen(engine.pool, "reset", _sqlite_reset)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(
        url, connect_args={"timeout": CONNECT_TIMEOUT}, pool_size=POSTGRES_POOL_SIZE
    )


def _sqlite_file(url: str) -> str:
    """The database file of an SQLite URL."""
    return make_url(url).database or ""


def _sqlite_busy(exc: BaseException) -> bool:
    """SQLite's "database is locked", which a journal-mode switch answers without waiting."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc)


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__

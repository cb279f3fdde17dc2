"""SQLite storage through SQLAlchemy async: one engine, serialized write transactions, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import Connection, delete, event, inspect, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from secure_mcp.common.private_files import ensure_private_dir
from secure_mcp.oauth.models import (
    AuthorizationCode,
    Base,
    Client,
    Consent,
    PendingAuthorization,
    Token,
)

DB_FILE = "oauth.sqlite3"
DEFAULT_UNUSED_CLIENT_TTL = 24 * 3600
# Tables of earlier versions that held per-browser-session state, which no longer exists.
LEGACY_TABLES = ("pending_requests", "consents")


def token_hash(value: str) -> str:
    """SHA-256 hex of a high-entropy token or secret: what the database keeps."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def now() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    """WAL journal and a busy timeout on every new connection."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def upgrade(conn: Connection) -> None:
    """Bring a database from an earlier version to the current tables (before create_all).

    Drops the per-browser-session tables, and adds `clients.authorized_at`, set for every
    existing client: a registration made before the column existed is not judged unused.
    """
    for table in LEGACY_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    tables = inspect(conn).get_table_names()
    columns = (
        {c["name"] for c in inspect(conn).get_columns("clients")} if "clients" in tables else set()
    )
    if "clients" in tables and "authorized_at" not in columns:
        conn.execute(text("ALTER TABLE clients ADD COLUMN authorized_at INTEGER"))
        conn.execute(text("UPDATE clients SET authorized_at = issued_at"))


class Database:
    """The authorization server's database in `<data_dir>/oauth.sqlite3`."""

    def __init__(self, data_dir: Path, unused_client_ttl: int = DEFAULT_UNUSED_CLIENT_TTL) -> None:
        self.path = data_dir / DB_FILE
        self.unused_client_ttl = unused_client_ttl
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.path}")
        event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the folder (0700), the file (0600) and the tables; drop expired rows."""
        ensure_private_dir(self.path.parent)
        self.path.touch(mode=0o600, exist_ok=True)
        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade)
            await conn.run_sync(Base.metadata.create_all)
        await self.cleanup()

    async def close(self) -> None:
        """Close every connection."""
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading."""
        async with self.sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One transaction, committed at block end (rolled back on error); writers take turns."""
        async with self._write_lock, self.sessions() as session, session.begin():
            yield session

    async def cleanup(self) -> int:
        """Delete expired rows, and registrations no user allowed in time; return the count."""
        moment = now()
        removed = 0
        async with self.write() as session:
            for table in (AuthorizationCode, Token, Consent, PendingAuthorization):
                result = await session.execute(delete(table).where(table.expires_at < moment))
                removed += int(getattr(result, "rowcount", 0) or 0)
            unused = delete(Client).where(
                Client.authorized_at.is_(None),
                Client.issued_at < moment - self.unused_client_ttl,
            )
            result = await session.execute(unused)
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

"""SQLite storage through SQLAlchemy async: one engine, serialized write transactions, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import delete, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from secure_mcp.common.private_files import ensure_private_dir
from secure_mcp.oauth.models import AuthorizationCode, Base, Consent, PendingRequest, Token

DB_FILE = "oauth.sqlite3"


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


class Database:
    """The authorization server's database in `<data_dir>/oauth.sqlite3`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / DB_FILE
        self.engine = create_async_engine(f"sqlite+aiosqlite:///{self.path}")
        event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the folder (0700), the file (0600) and the tables; drop expired rows."""
        ensure_private_dir(self.path.parent)
        self.path.touch(mode=0o600, exist_ok=True)
        async with self.engine.begin() as conn:
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
        """Delete expired codes, tokens, consents and pending requests; return the row count."""
        moment = now()
        removed = 0
        async with self.write() as session:
            for table in (AuthorizationCode, Token, Consent, PendingRequest):
                result = await session.execute(delete(table).where(table.expires_at < moment))
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

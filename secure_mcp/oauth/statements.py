"""The hot write path's statements: SQLAlchemy Core, compiled once, run on the driver.

A refresh grant is four statements (read the token, hold its family, rotate it, insert the new
pair). Through an `AsyncSession` each costs about 0.3 ms of SQLAlchemy's execution machinery
(session, greenlet, result objects) for microseconds of SQLite, and the write lock stays held
across every one of those steps; profiled, that was half of a grant's CPU. So the statements are
written once as Core constructs (`Prepared`), and the code that runs them talks to `Statements`:
- on SQLite, `SqliteStatements` runs the compiled SQL on the writer's own sqlite3 connection,
  with the bind and result conversions of the columns' types, as SQLAlchemy would;
- on PostgreSQL, `AsyncpgStatements` runs it on a pooled connection's asyncpg driver (its own
  prepared-statement cache), inside one asyncpg transaction;
- inside a session the ORM also uses (a code's redemption), `SessionStatements` runs them on
  the session.
The rules (which rows, which conditions, in which order) are the Core statements and the code
that calls them, the same whichever runs them; the tests run each on the same cases
(`tests/oauth/test_statements.py`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable

Convert = Callable[[Any], Any] | None


def rowcount(result: Any) -> int:
    """Rows changed by an UPDATE or DELETE run on a session."""
    return int(cast(CursorResult[Any], result).rowcount)


@dataclass(frozen=True)
class Compiled:
    """A statement's SQL in one dialect, its parameters in order and their conversions."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the order the SQL takes them
    fixed: Mapping[str, Any]  # values written into the statement (`.values(rotated=True)`)
    binds: tuple[Convert, ...]  # per parameter: Python value -> driver value
    columns: tuple[tuple[str, Convert], ...]  # per result column: name, driver -> Python

    @classmethod
    def of(cls, statement: Any, dialect: Dialect) -> Compiled:
        compiled = statement.compile(dialect=dialect)
        names = tuple(compiled.positiontup or ())
        binds = [compiled.binds[name] for name in names]
        selected = getattr(statement, "selected_columns", ())
        return cls(
            sql=compiled.string,
            names=names,
            fixed={
                name: bind.value
                for name, bind in zip(names, binds, strict=True)
                if not bind.required
            },
            binds=tuple(bind.type.bind_processor(dialect) for bind in binds),
            columns=tuple(
                (column.key, column.type.result_processor(dialect, None)) for column in selected
            ),
        )

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional arguments for `params` (a missing required one is a KeyError)."""
        fixed = self.fixed
        values = (fixed[name] if name in fixed else params[name] for name in self.names)
        return tuple(
            convert(value) if convert is not None else value
            for convert, value in zip(self.binds, values, strict=True)
        )

    def row(self, fetched: Sequence[Any]) -> dict[str, Any]:
        """A fetched row as {column: Python value}."""
        return {
            name: convert(item) if convert is not None else item
            for (name, convert), item in zip(self.columns, fetched, strict=True)
        }


class Prepared:
    """A Core statement built once, with its compiled form per dialect made on first use."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = Compiled.of(self.statement, dialect)
        return found


class Statements(Protocol):
    """Runs `Prepared` statements inside one transaction."""

    async def first(
        self, prepared: Prepared, params: Mapping[str, Any]
    ) -> dict[str, Any] | None: ...

    async def changed(self, prepared: Prepared, params: Mapping[str, Any]) -> int: ...

    async def insert(self, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None: ...


@dataclass
class SessionStatements:
    """`Statements` on an `AsyncSession`, beside the ORM in one transaction (a code's
    redemption adds its family row through the ORM, then issues the tokens)."""

    session: AsyncSession

    async def first(self, prepared: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of a SELECT, or None."""
        found = (await self.session.execute(prepared.statement, params)).mappings().first()
        return dict(found) if found is not None else None

    async def changed(self, prepared: Prepared, params: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        return rowcount(await self.session.execute(prepared.statement, params))

    async def insert(self, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT for each of `rows` (one executemany)."""
        await self.session.execute(prepared.statement, list(rows))


@dataclass
class SqliteStatements:
    """`Statements` on a sqlite3 connection inside a transaction, in the calling thread."""

    connection: sqlite3.Connection
    dialect: Dialect

    async def first(self, prepared: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of a SELECT, or None; the statement is reset before returning."""
        compiled = prepared.compiled(self.dialect)
        cursor = self.connection.execute(compiled.sql, compiled.arguments(params))
        try:
            fetched = cursor.fetchone()
        finally:
            cursor.close()
        return compiled.row(fetched) if fetched is not None else None

    async def changed(self, prepared: Prepared, params: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        compiled = prepared.compiled(self.dialect)
        cursor = self.connection.execute(compiled.sql, compiled.arguments(params))
        try:
            return cursor.rowcount
        finally:
            cursor.close()

    async def insert(self, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT for each of `rows` (one executemany)."""
        compiled = prepared.compiled(self.dialect)
        cursor = self.connection.executemany(compiled.sql, map(compiled.arguments, rows))
        cursor.close()


@dataclass
class AsyncpgStatements:
    """`Statements` on an asyncpg connection inside a transaction."""

    connection: Any  # asyncpg.Connection (untyped)
    dialect: Dialect

    async def first(self, prepared: Prepared, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of a SELECT, or None."""
        compiled = prepared.compiled(self.dialect)
        record = await self.connection.fetchrow(compiled.sql, *compiled.arguments(params))
        return compiled.row(tuple(record)) if record is not None else None

    async def changed(self, prepared: Prepared, params: Mapping[str, Any]) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed (from its status, "UPDATE n")."""
        compiled = prepared.compiled(self.dialect)
        status = await self.connection.execute(compiled.sql, *compiled.arguments(params))
        return int(str(status).rsplit(" ", 1)[-1])

    async def insert(self, prepared: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT for each of `rows` (one executemany)."""
        compiled = prepared.compiled(self.dialect)
        await self.connection.executemany(compiled.sql, [compiled.arguments(row) for row in rows])

"""Schema versions: the Alembic migrations shipped in `migrations/`, applied at every start.

Several instances may start at once on one empty database: on PostgreSQL the first takes a
session advisory lock and migrates inside one transaction, the others wait for the lock and
then find nothing to do. A database whose revision this code does not know was migrated by a
newer version: it is refused, never touched.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select

MIGRATIONS = "secure_mcp.oauth:migrations"
MIGRATION_LOCK = 0x5EC3_0A17  # the advisory lock every instance takes around migrations


class SchemaTooNew(Exception):
    """The database was migrated by a newer version of oauth.py."""


def config() -> Config:
    """Alembic's configuration for the shipped migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS)
    return cfg


def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None for an empty database or one from before migrations."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Migrate to the newest revision under the migration lock, in one transaction."""
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(select(func.pg_advisory_lock(MIGRATION_LOCK)))
        connection.commit()
    try:
        cfg = config()
        script = ScriptDirectory.from_config(cfg)
        found = current(connection)
        known = {revision.revision for revision in script.walk_revisions()}
        if found is not None and found not in known:
            raise SchemaTooNew(
                f"the database schema is at revision {found}, which this oauth.py does not know "
                f"(its newest is {script.get_current_head()}): a newer version migrated it; run "
                "that version, or restore a backup taken before the upgrade"
            )
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
        connection.commit()
    finally:
        if postgres:
            connection.rollback()
            connection.execute(select(func.pg_advisory_unlock(MIGRATION_LOCK)))
            connection.commit()

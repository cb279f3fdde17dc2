"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder.

Started once per test session on a free loopback port (as the `postgres` user when the tests
run as root, since PostgreSQL refuses to run as root), password authentication, fsync off;
each test gets a database of its own; the cluster is stopped and deleted at the end. Without
PostgreSQL's binaries the tests that need it are skipped with the reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port

SEARCH = ("/usr/lib/postgresql/*/bin",)  # Debian's versioned folders, besides $PATH
PASSWORD = secrets.token_urlsafe(16)  # per test run; the cluster only listens on loopback


def find_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: from $PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(
        (p for pattern in SEARCH for p in Path("/").glob(pattern.lstrip("/"))),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


@dataclass
class Cluster:
    """A running cluster: where it listens, and how to make databases on it."""

    bin_dir: Path
    folder: Path
    port: int
    _as_user: list[str]
    _count: int = 0

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        """The SQLAlchemy URL of `database` (user postgres, the run's password)."""
        return f"{driver}://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run `sql` with psql; its output."""
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
             "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": PASSWORD},
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return result.stdout

    def new_database(self) -> str:
        """A fresh empty database; its SQLAlchemy URL."""
        self._count += 1
        name = f"test_{os.getpid()}_{self._count}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        subprocess.run(
            [*self._as_user, str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.folder / "data"),
             "-m", "immediate", "-w"],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(bin_dir: Path) -> Cluster:
    """initdb and start a cluster on a free 127.0.0.1 port in a new temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="secure-mcp-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password_file = folder / "password"
    password_file.write_text(PASSWORD + "\n")
    if as_user:
        os.chown(password_file, pwd.getpwnam("postgres").pw_uid, -1)
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": folder}
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
         "--auth=scram-sha-256", f"--pwfile={password_file}", "--no-sync", "-E", "UTF8",
         "--locale=C"],
        check=True, **run,
    )  # fmt: skip
    password_file.unlink()
    port = free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "start", "-D", str(folder / "data"), "-w", "-t", "60",
         "-l", str(folder / "server.log"), "-o", options],
        check=True, **run,
    )  # fmt: skip
    return Cluster(bin_dir, folder, port, as_user)


def unavailable(reason: str, env: Mapping[str, str] = os.environ) -> None:
    """Skip with `reason`, or fail under CI=true (CI installs PostgreSQL: it must be there)."""
    if env.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """The session's PostgreSQL cluster (skipped, or failed under CI, without PostgreSQL)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed (no initdb/pg_ctl; `apt-get install postgresql`)")
    assert bin_dir is not None
    try:
        cluster = start_cluster(bin_dir)
    except (subprocess.CalledProcessError, OSError, KeyError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        unavailable(f"could not start a PostgreSQL cluster: {detail.strip()[:300]}")
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres: Cluster) -> str:
    """A fresh database on the session's cluster."""
    return postgres.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite (a file in tmp_path) and on PostgreSQL (a fresh database)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.new_database()

"""The storage layer on SQLite and on PostgreSQL (every test runs on both: `database_url`).

Two `Database` objects on one URL are two instances: separate connection pools, no shared
process-local lock, so whatever holds between them holds because of the database.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select, text, update

from secure_mcp.common.ratelimit import MemoryLimiter
from secure_mcp.common.resource_credentials import ResourceCredentials, save_all
from secure_mcp.oauth import consents, schema, shared_secrets, tokens
from secure_mcp.oauth.app import prepare
from secure_mcp.oauth.authorize import _document_client_record
from secure_mcp.oauth.authorize_request import Pending
from secure_mcp.oauth.models import (
    Base,
    Client,
    Consent,
    RateLimit,
    ServerSecret,
    Token,
    TokenFamily,
)
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.shared_limits import DatabaseLimiter
from secure_mcp.oauth.storage import Database, StorageError, _reason, now
from tests.support.oauth_harness import Flow, pkce, running_harness
from tests.support.postgres import PASSWORD, Cluster

PENDING = Pending(
    client_id="https://app.example/client.json",
    redirect_uri="https://app.example/cb",
    scope="weather:read",
    resource="http://127.0.0.1:8000/mcp",
    code_challenge="c" * 43,
    state=None,
)


@pytest.fixture
async def two(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two instances of the database on one URL, migrated."""
    first = Database(tmp_path / "a", url=database_url)
    second = Database(tmp_path / "b", url=database_url)
    await asyncio.gather(first.start(), second.start())
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


def _schema_diff(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrations_build_exactly_these_tables(two: tuple[Database, Database]) -> None:
    db, _ = two
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
        assert await conn.run_sync(schema.current) == schema.head()


async def test_instances_starting_together_on_an_empty_database_migrate_once(
    database_url: str, tmp_path: Path
) -> None:
    instances = [Database(tmp_path / str(i), url=database_url) for i in range(4)]
    await asyncio.gather(*(db.start() for db in instances))
    async with instances[0].read() as session:
        versions = (await session.execute(text("SELECT version_num FROM alembic_version"))).all()
    for db in instances:
        await db.close()
    assert [row[0] for row in versions] == [schema.head()]


async def test_a_database_of_a_newer_schema_is_refused(
    two: tuple[Database, Database], database_url: str, tmp_path: Path
) -> None:
    db, _ = two
    async with db.write() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    newer = Database(tmp_path / "c", url=database_url)
    with pytest.raises(StorageError) as refused:
        await newer.start()
    await newer.close()
    message = str(refused.value)
    assert "revision 9999" in message
    assert f"its newest is {schema.head()}" in message
    assert "\n" not in message
    async with db.read() as session:  # left as it was
        assert await session.scalar(text("SELECT version_num FROM alembic_version")) == "9999"


async def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    db = Database(tmp_path, url="postgresql+asyncpg://user:hunter2-secret@127.0.0.1:9/oauth")
    with pytest.raises(StorageError) as refused:
        await db.migrate()
    await db.close()
    message = str(refused.value)
    assert message.startswith("cannot use the database postgresql+asyncpg://user:***@127.0.0.1:9")
    assert "hunter2" not in message
    assert "\n" not in message


async def _family_with_refresh(db: Database, family: str) -> Token:
    """A family row and one live refresh token in it."""
    async with db.write() as session:
        tokens.start_family(session, family, now() + 3600)
        session.add(
            Token(
                token_hash=secrets.token_hex(32), kind=tokens.REFRESH, family_id=family,
                client_id="c", subject="demo", scope="weather:read", resource="r",
                issued_at=now(), expires_at=now() + 3600, revoked=False, rotated=False,
            )
        )  # fmt: skip
    async with db.read() as session:
        return (await session.scalars(select(Token).where(Token.family_id == family))).one()


async def test_a_revocation_racing_a_rotation_leaves_no_live_token(
    two: tuple[Database, Database], tmp_path: Path
) -> None:
    """Reuse detected at one instance while another rotates: the rotation's new tokens die too."""
    rotating, revoking = two
    old = await _family_with_refresh(rotating, "fam")
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12)
    started = asyncio.Event()

    async def revoke() -> None:
        await started.wait()
        async with revoking.write() as session:
            await tokens.revoke_family(session, "fam")

    revocation = asyncio.create_task(revoke())
    async with rotating.transaction() as statements:  # as the refresh grant runs it
        assert await tokens.hold_family(statements, "fam", now() + 7200)
        assert await tokens.rotate(statements, old.token_hash)
        grant = tokens.Grant("c", "demo", "weather:read", "r", "fam")
        await tokens.issue(
            statements, settings, grant, access_scope="weather:read", with_refresh=True
        )
        started.set()
        await asyncio.sleep(0.3)  # the revocation is waiting for this transaction now
    await asyncio.wait_for(revocation, 15)
    async with rotating.read() as session:
        states = (await session.execute(select(Token.kind, Token.revoked))).all()
        family = await session.get(TokenFamily, "fam")
    assert len(states) == 3
    assert all(revoked for _, revoked in states)
    assert family is not None
    assert family.revoked
    async with rotating.transaction() as statements:  # and the family takes no new token
        assert not await tokens.hold_family(statements, "fam", now() + 7200)


async def test_concurrent_consents_leave_one_row(two: tuple[Database, Database]) -> None:
    first, second = two
    await asyncio.gather(*(consents.save(db, PENDING, "demo", 3600) for db in (first, second) * 4))
    async with first.read() as session:
        rows = (await session.scalars(select(Consent))).all()
    assert len(rows) == 1
    assert rows[0].expires_at >= now() + 3590


async def test_concurrent_first_authorizations_of_a_document_client_leave_one_row(
    two: tuple[Database, Database],
) -> None:
    client = Client(
        client_id=PENDING.client_id, secret_hash=None, token_endpoint_auth_method="none",
        redirect_uris=[PENDING.redirect_uri], grant_types=["authorization_code"], scope=None,
        client_name="Doc", registered={"client_name": "Doc"}, issued_at=now(),
    )  # fmt: skip

    async def record(db: Database) -> None:
        async with db.write() as session:
            await session.execute(_document_client_record(db, client))

    await asyncio.gather(*(record(db) for db in two * 4))
    async with two[0].read() as session:
        rows = (await session.scalars(select(Client))).all()
    assert len(rows) == 1
    assert rows[0].authorized_at is not None
    first_allowed = rows[0].authorized_at
    client.client_name = "Doc, renamed"
    client.registered = {"client_name": "Doc, renamed"}
    await record(two[1])
    async with two[0].read() as session:
        row = await session.get(Client, PENDING.client_id)
    assert row is not None
    assert (row.client_name, row.authorized_at) == ("Doc, renamed", first_allowed)


async def test_instances_agree_on_generated_secrets(two: tuple[Database, Database]) -> None:
    first, second = two
    keys = await asyncio.gather(*(shared_secrets.session_key(db) for db in two * 3))
    assert len(set(keys)) == 1
    assert len(keys[0]) >= 48
    made = iter(ResourceCredentials(f"rs-{i}", secrets.token_urlsafe(32)) for i in range(10))
    creds = await asyncio.gather(
        *(shared_secrets.resource_credentials(db, "https://r.example/mcp", made.__next__)
          for db in (first, second) * 3)
    )  # fmt: skip
    assert len({(c.client_id, c.client_secret) for c in creds}) == 1
    async with second.read() as session:
        assert await session.scalar(select(func.count()).select_from(ServerSecret)) == 2


class Clock:
    """A settable wall clock for the limiters."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_database_limiter_behaves_like_the_memory_one(
    two: tuple[Database, Database],
) -> None:
    clock = Clock()
    shared = DatabaseLimiter(two[0], "t", rate=0.5, burst=3, clock=clock)
    memory = MemoryLimiter(rate=0.5, burst=3, clock=clock)
    script = [0, 0, 0, 0, 0.5, 1.5, 0, 2, 0, 0, 10, 0, 0, 0, 0]  # seconds between hits
    for step in script:
        clock.now += step
        assert await shared.check("k") == pytest.approx(await memory.check("k"))
        assert await shared.hit("k") == pytest.approx(await memory.hit("k"))
    assert await shared.hit("other") == 0.0  # keys are independent
    long_key = "x" * 500
    assert await shared.hit(long_key) == 0.0
    async with two[0].read() as session:
        buckets = set((await session.scalars(select(RateLimit.bucket))).all())
    assert "t:k" in buckets
    assert all(len(bucket) <= 128 for bucket in buckets)


async def test_instances_spend_from_one_bucket_exactly(two: tuple[Database, Database]) -> None:
    clock = Clock()
    limiters = [DatabaseLimiter(db, "login", rate=1 / 60, burst=5, clock=clock) for db in two]
    waits = await asyncio.gather(*(limiters[i % 2].hit("demo") for i in range(20)))
    assert sum(1 for wait in waits if wait == 0.0) == 5
    assert min(wait for wait in waits if wait) == pytest.approx(60.0)
    assert await limiters[1].check("demo") == pytest.approx(60.0)


async def test_cleanup_deletes_what_expired_and_instances_may_run_it_together(
    two: tuple[Database, Database],
) -> None:
    first, second = two
    await _family_with_refresh(first, "old")
    async with first.write() as session:
        await session.execute(update(Token).values(expires_at=1))
        await session.execute(update(TokenFamily).values(expires_at=1))
        session.add(RateLimit(bucket="t:k", tat=1.0, allowed=True))
        session.add(RateLimit(bucket="t:live", tat=now() + 600.0, allowed=True))
    removed = await asyncio.gather(first.cleanup(), second.cleanup())
    assert sum(removed) == 3  # token, family, bucket: once, whichever instance did it
    async with first.read() as session:
        assert (await session.scalars(select(RateLimit.bucket))).all() == ["t:live"]
        assert await session.scalar(select(func.count()).select_from(Token)) == 0


RELEASE = Path(__file__).parents[1] / "fixtures" / "oauth-db" / "release-538f78e"


async def test_a_database_of_the_previous_release_upgrades_and_keeps_working(
    tmp_path: Path,
) -> None:
    """The release before migrations (tests/fixtures/oauth-db/make_release_db.py made it)."""
    facts = json.loads(RELEASE.with_suffix(".json").read_text())
    data = tmp_path / "oauth-data"
    data.mkdir(mode=0o700)
    with sqlite3.connect(data / "oauth.sqlite3") as conn:
        conn.executescript(RELEASE.with_suffix(".sql").read_text())
        shift = now() - conn.execute("SELECT MIN(issued_at) FROM tokens").fetchone()[0]
        for table in ("tokens", "authorization_codes", "user_consents", "pending_authorizations"):
            conn.execute(f"UPDATE {table} SET expires_at = expires_at + ?", (shift,))  # noqa: S608
    (data / "oauth.sqlite3").chmod(0o600)
    save_all(data, {r: ResourceCredentials(*c) for r, c in facts["resource_credentials"].items()})
    async with running_harness(tmp_path) as oauth:
        assert (await oauth.introspect(facts["access_token"]))["active"] is True
        refreshed = await oauth.token(
            {"grant_type": "refresh_token", "refresh_token": facts["refresh_token"],
             "client_id": facts["public_client_id"]}
        )  # fmt: skip
        assert refreshed.status_code == 200, refreshed.text
        redeemed = await oauth.token(
            {"grant_type": "authorization_code", "code": facts["unused_code"],
             "code_verifier": facts["code_verifier"]},
            auth=(facts["confidential_client_id"], facts["confidential_client_secret"]),
        )  # fmt: skip
        assert redeemed.status_code == 200, redeemed.text
        client = {"client_id": facts["confidential_client_id"]}
        flow = Flow(client, *pkce(), redirect_uri="https://app.example/cb")
        await oauth.authorize(flow)  # the consent remembered by the old release still holds
        assert flow.code
    with sqlite3.connect(data / "oauth.sqlite3") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [
            (schema.head(),)
        ]
        assert conn.execute("SELECT COUNT(*) FROM pending_authorizations").fetchone() == (1,)


async def test_a_wrong_database_password_is_one_line_without_it(
    postgres: Cluster, tmp_path: Path
) -> None:
    url = postgres.url().replace(f":{PASSWORD}@", ":not-the-password@")
    db = Database(tmp_path, url=url)
    with pytest.raises(StorageError) as refused:
        await db.migrate()
    await db.close()
    message = str(refused.value)
    assert "password authentication failed" in message
    assert "not-the-password" not in message
    assert "\n" not in message
    assert _reason(TimeoutError()) == "TimeoutError"


async def test_prepare_migrates_before_serving(database_url: str, tmp_path: Path) -> None:
    settings = OAuthSettings(data_dir=tmp_path, demo_password="x" * 12, database_url=database_url)
    await prepare(settings)
    db = Database(tmp_path, url=database_url)
    async with db.engine.connect() as conn:
        assert await conn.run_sync(schema.current) == schema.head()
    await db.close()


async def test_a_family_revoked_elsewhere_refuses_the_rotation(tmp_path: Path) -> None:
    """The family row alone decides: revoked by another instance a moment ago, no new token."""
    async with running_harness(tmp_path) as oauth:
        flow = await oauth.new_flow()
        body = (await oauth.redeem(flow)).json()
        db = Database(oauth.settings.data_dir)
        async with db.write() as session:
            await session.execute(update(TokenFamily).values(revoked=True))
        await db.close()
        refused = await oauth.token(
            {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
             "client_id": flow.client["client_id"]}
        )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_limiter_rates_must_be_positive(tmp_path: Path) -> None:
    db = Database(tmp_path)
    for rate, burst in ((0.0, 1), (1.0, 0)):
        with pytest.raises(ValueError, match="positive"):
            DatabaseLimiter(db, "x", rate, burst)


def test_the_session_key_is_never_shown_and_must_be_loaded() -> None:
    key = shared_secrets.SessionKey()
    with pytest.raises(RuntimeError, match="loaded when the server starts"):
        _ = key.value
    key.set("k" * 48)
    assert key.value == b"k" * 48
    assert "k" not in repr(key).replace("SessionKey", "")


async def test_a_new_sqlite_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    """A journal-mode switch answers "database is locked" at once: start retries, briefly."""
    path = tmp_path / "shared.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another instance writing before the switch to WAL
    db = Database(tmp_path, url=f"sqlite+aiosqlite:///{path}")
    migration = asyncio.create_task(db.migrate())
    await asyncio.sleep(0.3)
    assert not migration.done()
    holder.execute("COMMIT")
    holder.close()
    await asyncio.wait_for(migration, 15)
    async with db.engine.connect() as conn:
        assert await conn.run_sync(schema.current) == schema.head()
    await db.close()


async def test_instances_accept_a_dpop_proof_once(
    two: tuple[Database, Database], tmp_path: Path
) -> None:
    from secure_mcp.oauth.dpop import TokenEndpointProofs
    from secure_mcp.oauth.settings import OAuthSettings

    now = [1000.0]
    settings = OAuthSettings(data_dir=tmp_path, demo_password="p" * 16)
    proofs = [TokenEndpointProofs(settings, db, b"k" * 32, clock=lambda: now[0]) for db in two]
    claims = await asyncio.gather(*(proofs[i % 2]._first_use("same", 1010) for i in range(6)))
    assert sorted(claims) == [False] * 5 + [True]  # RFC 9449 11.1: across instances too
    now[0] = 1020.0  # its window is over: the row may be taken again
    assert await proofs[1]._first_use("same", 1080)
    assert not await proofs[0]._first_use("same", 1080)

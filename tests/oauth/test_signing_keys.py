"""Signing-key rotation, the whole timeline on an injected clock, and `oauth.py keys`."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx2
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import update

from secure_mcp.common.private_files import write_private_json
from secure_mcp.oauth import keys_cli
from secure_mcp.oauth.app import database, key_schedule, prepare
from secure_mcp.oauth.models import ServerSecret
from secure_mcp.oauth.rfc9068 import JwtSigner
from secure_mcp.oauth.settings import OAuthSettings, SettingsError, settings_from
from secure_mcp.oauth.shared_secrets import DatabaseKeyStore
from secure_mcp.oauth.signing_keys import (
    CLOCK_SKEW,
    KEYS_FILE,
    FileKeyStore,
    KeyStoreError,
    Schedule,
    SigningKeys,
    StoredKey,
    new_key,
)
from tests.support.oauth_server import running_oauth_app

T0 = 1_800_000_000
TTL, AHEAD, RELOAD = 300, 600, 60


class Clock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def schedule() -> Schedule:
    """The schedule oauth.py derives from a 300 s token lifetime and a 600 s publish-ahead."""
    settings = OAuthSettings(
        data_dir=Path("/nonexistent"),
        demo_password="x" * 12,
        access_token_format="jwt",
        access_token_ttl=TTL,
        signing_key_publish_ahead=AHEAD,
        signing_key_reload=RELOAD,
    )
    return key_schedule(settings)


def kids(keys: SigningKeys) -> list[str]:
    """The key ids in the JWKS."""
    return [key["kid"] for key in keys.jwks()["keys"]]


def verifies(token: str, keys: SigningKeys) -> bool:
    """True when `token` verifies against the JWKS `keys` publishes now."""
    try:
        jwt.decode(token, KeySet.import_key_set(keys.jwks()), algorithms=["ES256"])
    except JoseError:
        return False
    return True


async def test_the_whole_rotation_timeline(tmp_path: Path) -> None:
    clock, plan = Clock(), schedule()
    assert plan.retire_after == TTL + RELOAD + CLOCK_SKEW
    store = FileKeyStore(tmp_path)
    server = SigningKeys(store, plan, clock)
    await server.start()  # first start: one key, signing at once
    [old] = kids(server)
    assert server.current()[0] == old
    signer = JwtSigner("https://as.example", server)

    def token() -> str:
        return signer.access_token(
            audience="https://rs.example/mcp",
            client_id="c",
            subject="s",
            scope="x",
            issued=int(clock.now),
            ttl=TTL,
        )

    # a rotation (the `keys rotate` command, another process) at T0 + 1000
    clock.now = T0 + 1000
    rotated = await store.update(lambda keys: plan.rotated(keys, int(clock.now)))
    new = rotated[-1].kid
    assert rotated[-1].activates_at == T0 + 1000 + AHEAD
    assert kids(server) == [old]  # this instance has not re-read the store yet
    clock.now += RELOAD
    await server.reload()
    assert kids(server) == [old, new]  # published ahead of signing
    assert server.current()[0] == old
    # the last token the old key signs, one second before the new key takes over
    clock.now = T0 + 1000 + AHEAD - 1
    last_old = token()
    assert server.current()[0] == old
    clock.now = T0 + 1000 + AHEAD
    assert server.current()[0] == new  # the switch
    first_new = token()
    assert verifies(last_old, server)
    assert verifies(first_new, server)
    # the old key stays published until its last token has expired, with margin to spare
    retires = T0 + 1000 + AHEAD + plan.retire_after
    assert plan.retires_at(rotated[0], rotated) == retires
    clock.now = retires - 1
    assert kids(server) == [old, new]
    last_expiry = (T0 + 1000 + AHEAD - 1) + TTL
    assert last_expiry + RELOAD + CLOCK_SKEW < retires  # an instance reloading late, skewed
    clock.now = retires
    assert kids(server) == [new]
    assert not verifies(last_old, server)
    assert verifies(first_new, server)
    # the next rotation drops the retired key from the store
    clock.now += 5
    again = await store.update(lambda keys: plan.rotated(keys, int(clock.now)))
    assert [k.kid for k in again][:1] == [new]
    assert old not in [k.kid for k in again]
    assert len(again) == 2


async def test_instances_sharing_a_store_sign_with_the_same_keys(tmp_path: Path) -> None:
    clock, plan = Clock(), schedule()
    one, two = (SigningKeys(FileKeyStore(tmp_path), plan, clock) for _ in range(2))
    await one.start()
    await two.start()  # finds the key the first one made
    assert one.jwks() == two.jwks()
    assert one.current()[0] == two.current()[0]


def test_two_rotations_in_a_row_publish_both_and_sign_in_order() -> None:
    plan = schedule()
    first = plan.ensured([], T0)
    twice = plan.rotated(plan.rotated(first, T0 + 10), T0 + 20)
    assert len(twice) == 3
    assert plan.signing(twice, T0 + 20).kid == first[0].kid  # type: ignore[union-attr]
    assert plan.signing(twice, T0 + 10 + AHEAD).kid == twice[1].kid  # type: ignore[union-attr]
    assert plan.signing(twice, T0 + 20 + AHEAD).kid == twice[2].kid  # type: ignore[union-attr]
    assert plan.published(twice, T0 + 20) == twice
    assert plan.signing([], T0) is None


async def test_a_reload_that_finds_no_usable_keys_keeps_the_old_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    keys = SigningKeys(FileKeyStore(tmp_path), schedule(), clock)
    await keys.start()
    before = keys.jwks()
    (tmp_path / KEYS_FILE).write_text("damaged")
    with caplog.at_level(logging.ERROR):
        await keys.reload()
    assert keys.jwks() == before
    pending = new_key(T0, T0 + 10_000)  # only a key that signs in the future
    write_private_json(tmp_path / KEYS_FILE, {"keys": [pending.to_json()]})
    await keys.reload()
    assert keys.jwks() == before
    assert "none that signs now" in caplog.text
    assert "not reloaded" in caplog.text


def test_no_signing_key_before_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="loaded when the server starts"):
        SigningKeys(FileKeyStore(tmp_path), schedule()).current()


def test_stored_keys_are_checked(tmp_path: Path) -> None:
    key = new_key(T0, T0)
    good = key.to_json()
    assert StoredKey.from_json(good) == key
    assert "jwk" not in repr(key)
    assert key.jwk["d"] not in repr(key)
    public = {k: v for k, v in good["jwk"].items() if k != "d"}
    other = new_key(T0, T0)
    cases = [
        ([], "not a JSON object"),
        ({**good, "created_at": "now"}, "no created_at"),
        ({**good, "jwk": public}, "not a private P-256 key"),
        ({**good, "kid": other.kid}, "not a private P-256 key"),
    ]
    for entry, message in cases:
        with pytest.raises(KeyStoreError, match=message):
            StoredKey.from_json(entry)


def test_keys_command_lists_and_rotates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path / "data"), "OAUTH_ACCESS_TOKEN_FORMAT": "jwt"}
    lines: list[str] = []
    clock = Clock()
    assert keys_cli.main(["list"], env, clock, lines.append) == 0
    assert lines[-1] == "  (none yet: oauth.py makes one at start)"
    lines.clear()
    assert keys_cli.main(["rotate"], env, clock, lines.append) == 0  # first key and its successor
    assert lines[0].startswith("New signing key ")
    assert "in 600 s" in lines[0]
    assert "signing since 2027-01-15 08:00:00 UTC" in lines[2]
    assert "published, signs from 2027-01-15 08:10:00 UTC (in 600 s)" in lines[3]
    clock.now = T0 + 600
    lines.clear()
    assert keys_cli.main(["list"], env, clock, lines.append) == 0
    assert "retiring: no longer signs, published until 2027-01-15 08:17:00 UTC" in lines[1]
    assert "signing since 2027-01-15 08:10:00 UTC" in lines[2]
    clock.now = T0 + 600 + 420
    lines.clear()
    keys_cli.main(["list"], env, clock, lines.append)
    assert "retired: no longer published" in lines[1]
    assert keys_cli.main([], env, clock, lines.append) == 2
    assert keys_cli.main(["delete"], env, clock, lines.append) == 2
    assert "usage: oauth.py keys {list,rotate}" in capsys.readouterr().err
    with pytest.raises(SettingsError):
        keys_cli.main(["list", "--access-token-ttl", "0"], env, clock, lines.append)


async def test_a_running_server_publishes_a_rotation_made_by_another_process(
    tmp_path: Path,
) -> None:
    overrides = {
        "access_token_format": "jwt",
        "signing_key_reload": 0.05,
        "jwks_max_age": 0,
        "signing_key_publish_ahead": 1,
    }
    async with (
        running_oauth_app(tmp_path, **overrides) as (app, settings),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url=settings.issuer
        ) as client,
    ):
        assert len((await client.get("/jwks")).json()["keys"]) == 1
        store, plan = FileKeyStore(settings.data_dir), key_schedule(settings)
        await store.update(lambda keys: plan.rotated(keys, int(time.time())))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len((await client.get("/jwks")).json()["keys"]) == 2:
                break
        assert len((await client.get("/jwks")).json()["keys"]) == 2


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ("not json", r"^the database \(server_secrets, signing-keys\) is not JSON; restore it"),
        ('{"keys": 5}', r"^the database \(server_secrets, signing-keys\) has no list of keys"),
        ('{"keys": [{"kid": "k"}]}', r"signing-keys\): a key entry has no kid or jwk; restore"),
    ],
    ids=["garbage", "no-list", "bad-entry"],
)
async def test_damaged_shared_keys_stop_the_start_in_one_line(
    tmp_path: Path, database_url: str, stored: str, message: str
) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path / "data"), "OAUTH_DATABASE_URL": database_url,
           "OAUTH_ACCESS_TOKEN_FORMAT": "jwt"}  # fmt: skip
    settings = settings_from([], env)
    (tmp_path / "data").mkdir(mode=0o700)
    await prepare(settings)  # an empty database: migrated, no keys yet (made at start)
    db = database(settings)
    store = DatabaseKeyStore(db)
    first = await store.update(lambda keys: key_schedule(settings).ensured(keys, 1000))
    assert [key.kid for key in await store.load()] == [first[0].kid]
    async with db.write() as session:
        await session.execute(
            update(ServerSecret).where(ServerSecret.name == "signing-keys").values(value=stored)
        )
    await db.close()
    with pytest.raises(SettingsError, match=message):
        await prepare(settings)

"""Two instances on one database behave as one server (in process; SQLite and PostgreSQL).

The real-process counterpart on PostgreSQL is tests/e2e/test_instances_process.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from secure_mcp.common.ratelimit import Rate
from secure_mcp.common.resource_credentials import CREDENTIALS_FILE, ResourceCredentials, load_all
from secure_mcp.oauth import keys_cli
from tests.support.instances import Pair, two_instances
from tests.support.machine_clients import (
    INITIAL_ACCESS_TOKEN_HASH,
    assertion,
    assertion_form,
    jwks,
    new_key,
    register_machine,
)
from tests.support.oauth_harness import REDIRECT, RESOURCE, Flow, pkce
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME

HTTPS_REDIRECT = "https://app.example/cb"


@pytest.fixture
async def pair(tmp_path: Path, database_url: str) -> AsyncIterator[Pair]:
    async with two_instances(tmp_path, database_url) as instances:
        yield instances


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


async def test_every_step_may_land_on_either_instance(pair: Pair) -> None:
    """Register, sign in, consent, redeem, refresh, introspect, revoke: alternating instances."""
    oauth = pair.harness
    pair.balancer.round_robin = True
    flow = await oauth.new_flow()
    tokens = (await oauth.redeem(flow)).json()
    refreshed = await oauth.token(
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
         "client_id": flow.client["client_id"]}
    )  # fmt: skip
    assert refreshed.status_code == 200, refreshed.text
    assert (await oauth.introspect(refreshed.json()["access_token"]))["active"] is True
    revoke = await oauth.http.post(
        "/revoke",
        data={"token": refreshed.json()["refresh_token"], "client_id": flow.client["client_id"]},
    )
    assert revoke.status_code == 200
    for index in (0, 1):  # the family is dead everywhere
        assert (await pair.at(index).introspect(refreshed.json()["access_token"])) == {
            "active": False
        }
    assert min(pair.balancer.served) >= 5


async def test_a_code_is_redeemed_once_when_both_instances_race(pair: Pair) -> None:
    for _ in range(4):
        flow = await pair.at(0).new_flow()
        data = {
            "grant_type": "authorization_code", "code": flow.code, "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier, "client_id": flow.client["client_id"],
            "resource": RESOURCE,
        }  # fmt: skip
        answers = await asyncio.gather(
            *(pair.direct[i % 2].post("/token", data=data) for i in range(4))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 400, 400, 400]
        assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code == 400)
        winner = next(a for a in answers if a.status_code == 200).json()
        # RFC 6749 10.5: the replays revoked what the code had issued, at both instances
        for index in (0, 1):
            assert (await pair.at(index).introspect(winner["access_token"]))["active"] is False


async def test_refresh_reuse_at_the_other_instance_revokes_the_family(pair: Pair) -> None:
    oauth = pair.at(0)
    flow = await oauth.new_flow()
    first = (await oauth.redeem(flow)).json()
    client_id = flow.client["client_id"]
    rotated = await pair.direct[0].post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
              "client_id": client_id},
    )  # fmt: skip
    assert rotated.status_code == 200
    reused = await pair.direct[1].post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
              "client_id": client_id},
    )  # fmt: skip
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    for index in (0, 1):
        assert (await pair.at(index).introspect(rotated.json()["access_token"]))["active"] is False
    again = await pair.direct[0].post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": rotated.json()["refresh_token"],
              "client_id": client_id},
    )  # fmt: skip
    assert again.status_code == 400


async def test_concurrent_refreshes_at_both_instances_rotate_once(pair: Pair) -> None:
    flow = await pair.at(1).new_flow()
    body = (await pair.harness.redeem(flow)).json()
    data = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
            "client_id": flow.client["client_id"]}  # fmt: skip
    answers = await asyncio.gather(
        *(pair.direct[i % 2].post("/token", data=data) for i in range(6))
    )
    assert sum(1 for a in answers if a.status_code == 200) <= 1
    assert all(a.json()["error"] == "invalid_grant" for a in answers if a.status_code != 200)


async def test_sign_in_and_consent_are_shared(pair: Pair) -> None:
    """Login page at one, password at the other, consent at the first; consent remembered."""
    oauth = pair.at(0)
    client = await oauth.register(
        token_endpoint_auth_method="client_secret_basic", redirect_uris=[HTTPS_REDIRECT]
    )
    flow = Flow(client, *pkce(), redirect_uri=HTTPS_REDIRECT)
    page = await pair.at(0).http.get(oauth.authorization_url(flow))
    fields = {name: hidden(page.text, name) for name in ("csrf_token", "tx")}
    login = await pair.at(1).http.post(
        "/authorize", data={**fields, "username": TEST_USERNAME, "password": TEST_PASSWORD}
    )
    assert login.status_code == 303, login.text
    consent = await pair.at(0).http.get(login.headers["location"])
    assert consent.status_code == 200
    assert 'name="decision"' in consent.text
    decided = await pair.at(1).http.post(
        "/authorize",
        data={"csrf_token": hidden(consent.text, "csrf_token"), "tx": hidden(consent.text, "tx"),
              "decision": "allow"},
    )  # fmt: skip
    assert decided.status_code == 303
    assert decided.headers["location"].startswith(HTTPS_REDIRECT + "?code=")
    # the consent saved through instance 1 spares the consent page at instance 0
    again = Flow(client, *pkce(), redirect_uri=HTTPS_REDIRECT)
    location = await pair.at(0).authorize(again)
    assert again.code, location


async def test_secrets_are_kept_in_the_database(pair: Pair, tmp_path: Path) -> None:
    folders = [tmp_path / name / "oauth-data" for name in ("a", "b")]
    for folder in folders:
        assert not (folder / "session-secret").exists()
        assert not (folder / "oauth.sqlite3").exists()
    files = [(folder / CREDENTIALS_FILE).read_text() for folder in folders]
    assert files[0] == files[1]  # the same generated credentials, each folder its own copy
    token = (await pair.harness.redeem(await pair.at(0).new_flow())).json()["access_token"]
    assert (await pair.at(1).introspect(token))["active"] is True


async def test_limits_are_shared(tmp_path: Path, database_url: str) -> None:
    strict = {"register_rate": Rate(3, 60), "login_failures_per_account": Rate(2, 300)}
    async with two_instances(tmp_path, database_url, **strict) as pair:
        client = await pair.at(0).register()  # 1 of 3 registrations a minute from this source
        for index in (1, 0):  # 2 and 3 (refused for their body, counted all the same)
            assert (await pair.direct[index].post("/register", json={})).status_code == 400
        for index in (1, 0):
            refused = await pair.direct[index].post("/register", json={})
            assert refused.status_code == 429
            assert refused.json()["error"] == "temporarily_unavailable"
        # two wrong passwords, one at each instance: the third try is refused, right or wrong
        flow = Flow(client, *pkce())
        for index, password, expected in (
            (0, "wrong", 200),
            (1, "wrong", 200),
            (0, TEST_PASSWORD, 429),
        ):
            page = await pair.at(index).http.get(pair.harness.authorization_url(flow))
            fields = {name: hidden(page.text, name) for name in ("csrf_token", "tx")}
            answer = await pair.at(1 - index).http.post(
                "/authorize", data={**fields, "username": TEST_USERNAME, "password": password}
            )
            assert answer.status_code == expected, answer.text


async def test_the_registration_bound_holds_across_instances(
    tmp_path: Path, database_url: str
) -> None:
    async with two_instances(tmp_path, database_url, max_unused_clients=3) as pair:
        body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}
        answers = await asyncio.gather(
            *(pair.direct[i % 2].post("/register", json=body) for i in range(8))
        )
    assert sorted(answer.status_code for answer in answers) == [201] * 3 + [503] * 5


async def test_introspection_credentials_from_the_environment_are_shared(
    tmp_path: Path, database_url: str
) -> None:
    """Set on every instance, they are never stored: only the generated ones reach the file."""
    given = ResourceCredentials("rs-from-env", "a-secret-from-the-environment")
    other = "https://other.example/mcp"
    async with two_instances(
        tmp_path, database_url, introspection_credentials=given, resources=(RESOURCE, other)
    ) as pair:
        token = (await pair.harness.redeem(await pair.at(0).new_flow())).json()["access_token"]
        for http in pair.direct:
            answer = await http.post(
                "/introspect", data={"token": token}, auth=("rs-from-env", given.client_secret)
            )
            assert answer.json()["active"] is True
        files = [load_all(tmp_path / name / "oauth-data") for name in ("a", "b")]
    assert files[0] == files[1]
    assert list(files[0]) == [other]


async def test_in_jwt_mode_every_instance_signs_with_the_shared_keys(
    tmp_path: Path, database_url: str
) -> None:
    """One key set in the database: the same JWKS everywhere, a JWT from one verifies with the
    other's JWKS, a rotation made anywhere reaches both, and no key file is written."""
    overrides = {"access_token_format": "jwt", "signing_key_reload": 0.05, "jwks_max_age": 0}
    async with two_instances(tmp_path, database_url, **overrides) as pair:
        jwks = [(await client.get("/jwks")).json() for client in pair.direct]
        assert jwks[0] == jwks[1]
        assert len(jwks[0]["keys"]) == 1
        flow = await pair.at(0).new_flow()
        token = (await pair.at(0).redeem(flow)).json()["access_token"]
        claims = jwt.decode(token, KeySet.import_key_set(jwks[1]), algorithms=["ES256"]).claims
        assert claims["aud"] == RESOURCE
        assert (await pair.at(1).introspect(token))["active"] is True
        env = {"OAUTH_DATA_DIR": str(tmp_path / "c"), "OAUTH_DATABASE_URL": database_url,
               "OAUTH_ACCESS_TOKEN_FORMAT": "jwt"}  # fmt: skip
        lines: list[str] = []
        assert await asyncio.to_thread(keys_cli.main, ["rotate"], env, write=lines.append) == 0
        assert lines[1].startswith("Signing keys in the database (server_secrets, signing-keys)")
        for _ in range(100):
            jwks = [(await client.get("/jwks")).json() for client in pair.direct]
            if all(len(keys["keys"]) == 2 for keys in jwks):
                break
            await asyncio.sleep(0.05)
        assert jwks[0] == jwks[1]
        assert len(jwks[0]["keys"]) == 2
    assert key_files(tmp_path) == []


def key_files(folder: Path) -> list[Path]:
    """Signing-key files in the instances' data folders (there must be none)."""
    return list(folder.glob("*/signing-keys.json"))


async def test_a_client_assertion_is_accepted_once_across_instances(
    tmp_path: Path, database_url: str
) -> None:
    """private_key_jwt (issue 14): the same assertion sent to both instances at once wins once."""
    overrides = {"initial_access_token_hash": INITIAL_ACCESS_TOKEN_HASH}
    async with two_instances(tmp_path, database_url, **overrides) as pair:
        key = new_key()
        registered = await register_machine(
            pair.harness.http, token_endpoint_auth_method="private_key_jwt", jwks=jwks(key)
        )
        client_id = registered.json()["client_id"]
        for _ in range(3):
            form = assertion_form(assertion(key, client_id, pair.harness.settings.issuer))
            answers = await asyncio.gather(
                *(pair.direct[i % 2].post("/token", data=form) for i in range(4))
            )
            assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]

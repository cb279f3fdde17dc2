"""DPoP at weather.py (RFC 9449 7, 9): the scheme, the proof, the key, and every downgrade."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from secure_mcp.common.dpop_replay import MemoryReplayCache
from secure_mcp.weather.app import Seams, build_app, startup_banner
from secure_mcp.weather.dpop import ResourceProofs
from secure_mcp.weather.errors import ProofCacheFullError
from secure_mcp.weather.settings import SettingsError, settings_from
from tests.support.dpop import hmac_proof, jkt_of, new_key, proof
from tests.support.weather_app import (
    INITIALIZE,
    MCP_HEADERS,
    PRM,
    FakeIntrospectionServer,
    make_settings,
    serving,
)

URL = "http://127.0.0.1:8000/mcp"
ALGS = 'algs="ES256 ES384 ES512 PS256 RS256"'


@contextlib.asynccontextmanager
async def weather_with(auth_server: FakeIntrospectionServer, **settings: Any) -> AsyncIterator[Any]:
    """The weather app with `settings` overrides."""
    seams = Seams(introspection_transport=auth_server.transport())
    app = build_app(make_settings(**settings), seams=seams)
    async with serving(app) as client:
        yield client


@pytest.fixture
async def weather(auth_server: FakeIntrospectionServer) -> AsyncIterator[httpx2.AsyncClient]:
    async with weather_with(auth_server) as client:
        yield client


async def post(
    client: httpx2.AsyncClient,
    token: str,
    *,
    scheme: str = "DPoP",
    dpop: str | None = None,
    url: str = "/mcp",
    host: str | None = None,
) -> httpx2.Response:
    """An MCP initialize with `Authorization: <scheme> <token>` and the proof `dpop`."""
    headers = {**MCP_HEADERS, "authorization": f"{scheme} {token}"}
    if dpop is not None:
        headers["dpop"] = dpop
    if host is not None:
        headers["host"] = host
    return await client.post(url, json=INITIALIZE, headers=headers)


def bound(auth_server: FakeIntrospectionServer, key: ECKey, name: str = "bound") -> str:
    """An introspected token bound to `key`."""
    return auth_server.grant(name, token_type="DPoP", cnf={"jkt": jkt_of(key)})


async def test_a_bound_token_with_its_proof_gets_in(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    key = new_key()
    token = bound(auth_server, key)
    response = await post(weather, token, dpop=proof(key, "POST", URL, token=token))
    assert response.status_code == 200, response.text
    again = await post(weather, token, dpop=proof(key, "POST", URL, token=token))
    assert again.status_code == 200  # a fresh proof each time; the grant is cached
    assert auth_server.introspections == 1


async def test_a_jwt_bound_by_cnf_gets_in(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    key = new_key()
    token = auth_server.jwt(cnf={"jkt": jkt_of(key)})
    assert (
        await post(weather, token, dpop=proof(key, "POST", URL, token=token))
    ).status_code == 200
    downgrade = await post(weather, token, scheme="Bearer")
    assert downgrade.status_code == 401
    malformed = auth_server.jwt(cnf={"jkt": 5})
    refused = await post(weather, malformed, dpop=proof(key, "POST", URL, token=malformed))
    assert refused.status_code == 401


async def test_the_proof_may_name_localhost_when_the_client_used_it(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    key = new_key()
    token = bound(auth_server, key)
    value = proof(key, "POST", "http://localhost:8000/mcp", token=token)
    response = await post(weather, token, dpop=value, host="localhost:8000")
    assert response.status_code == 200, response.text


def _refusal(response: httpx2.Response, error: str) -> str:
    """The DPoP challenge of a 401 carrying `error` (Bearer first, without the error)."""
    assert response.status_code == 401, response.text
    bearer, dpop = response.headers.get_list("www-authenticate")
    assert bearer == f'Bearer resource_metadata="{PRM}", scope="weather:read"'
    assert dpop.startswith(f'DPoP {ALGS}, resource_metadata="{PRM}", scope="weather:read", ')
    assert f'error="{error}"' in dpop
    assert response.json()["error"] == error
    return dpop


ATTACKS = [
    ("replayed", None),
    ("missing-proof", lambda k, t: None),
    ("wrong-htu", lambda k, t: proof(k, "POST", "http://127.0.0.1:8000/other", token=t)),
    ("token-endpoint-htu", lambda k, t: proof(k, "POST", "http://localhost:8003/token", token=t)),
    ("wrong-htm", lambda k, t: proof(k, "GET", URL, token=t)),
    ("missing-ath", lambda k, t: proof(k, "POST", URL)),
    ("other-tokens-ath", lambda k, t: proof(k, "POST", URL, token="smcp_at_other")),
    ("stale-iat", lambda k, t: proof(k, "POST", URL, token=t, claims={"iat": 1})),
    ("alg-none", lambda k, t: proof(k, "POST", URL, token=t, header={"alg": "none"})),
    ("hs256", lambda k, t: hmac_proof("POST", URL, b"k" * 32)),
    ("two-proofs", lambda k, t: f"{proof(k, 'POST', URL, token=t)}, x"),
]


@pytest.mark.parametrize("make", [a[1] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_bad_proofs_are_invalid_dpop_proof(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer, make: Any
) -> None:
    key = new_key()
    token = bound(auth_server, key)
    if make is None:  # the replay: the same proof twice
        value = proof(key, "POST", URL, token=token)
        assert (await post(weather, token, dpop=value)).status_code == 200
    else:
        value = make(key, token)
    _refusal(await post(weather, token, dpop=value), "invalid_dpop_proof")
    if make is not None:
        assert auth_server.introspections == 0  # a forged proof costs the AS nothing


async def test_a_proof_of_another_key_is_refused(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    key, thief = new_key(), new_key()
    token = bound(auth_server, key)
    response = await post(weather, token, dpop=proof(thief, "POST", URL, token=token))
    assert "not bound to the DPoP proof" in _refusal(response, "invalid_token")


async def test_a_bearer_token_with_a_proof_is_refused(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    key = new_key()
    token = auth_server.grant("plain")
    response = await post(weather, token, dpop=proof(key, "POST", URL, token=token))
    _refusal(response, "invalid_token")


async def test_a_bound_token_sent_as_bearer_is_refused(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = bound(auth_server, new_key())
    response = await post(weather, token, scheme="Bearer")
    assert response.status_code == 401
    bearer, dpop = response.headers.get_list("www-authenticate")
    assert 'error="invalid_token"' in bearer
    assert "DPoP-bound" in bearer
    assert dpop == f'DPoP {ALGS}, resource_metadata="{PRM}", scope="weather:read"'


@pytest.mark.parametrize(
    "claims",
    [{"token_type": "DPoP"}, {"cnf": "x"}, {"cnf": {"jkt": ""}}, {"token_type": "mac"}],
    ids=["dpop-without-cnf", "cnf-not-object", "empty-jkt", "unknown-type"],
)
async def test_unusable_bindings_from_introspection_are_refused(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer, claims: dict[str, Any]
) -> None:
    key = new_key()
    token = auth_server.grant("odd", **claims)
    for response in (
        await post(weather, token, scheme="Bearer"),
        await post(weather, token, dpop=proof(key, "POST", URL, token=token)),
    ):
        assert response.status_code == 401


async def test_bearer_clients_keep_working(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("plain")
    assert (await post(weather, token, scheme="Bearer")).status_code == 200
    missing = await weather.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert missing.headers.get_list("www-authenticate") == [
        f'Bearer resource_metadata="{PRM}", scope="weather:read"',
        f'DPoP {ALGS}, resource_metadata="{PRM}", scope="weather:read"',
    ]


async def test_require_dpop_refuses_bearer_and_says_so(
    auth_server: FakeIntrospectionServer,
) -> None:
    key = new_key()
    plain, token = auth_server.grant("plain"), bound(auth_server, key)
    async with weather_with(auth_server, require_dpop=True) as client:
        refused = await post(client, plain, scheme="Bearer")
        missing = await client.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        accepted = await post(client, token, dpop=proof(key, "POST", URL, token=token))
        metadata = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert refused.status_code == 401
    (only,) = refused.headers.get_list("www-authenticate")
    assert only.startswith(f'DPoP {ALGS}, resource_metadata="{PRM}"')
    assert 'error="invalid_token"' in only
    assert "DPoP-bound access tokens only" in only
    assert missing.headers.get_list("www-authenticate") == [
        f'DPoP {ALGS}, resource_metadata="{PRM}", scope="weather:read"'
    ]
    assert accepted.status_code == 200
    assert metadata["dpop_bound_access_tokens_required"] is True
    assert auth_server.introspections == 1  # the bearer token was never looked up


async def test_resource_nonces(auth_server: FakeIntrospectionServer) -> None:
    key = new_key()
    token = bound(auth_server, key)
    async with weather_with(auth_server, dpop_nonce=True) as client:
        asked = await post(client, token, dpop=proof(key, "POST", URL, token=token))
        nonce = asked.headers["dpop-nonce"]
        answer = await post(client, token, dpop=proof(key, "POST", URL, token=token, nonce=nonce))
    _refusal(asked, "use_dpop_nonce")
    assert answer.status_code == 200


async def test_a_full_replay_cache_refuses_with_503() -> None:
    key = new_key()
    proofs = ResourceProofs(resource_url=URL, replay=MemoryReplayCache(size=1))
    scope: dict[str, Any] = {"method": "POST", "path": "/mcp", "headers": []}
    for attempt in range(2):
        scope["headers"] = [(b"dpop", proof(key, "POST", URL, token="t").encode())]
        if attempt == 0:
            await proofs.check(scope, "t")
        else:  # full of live proofs: refused, never one forgotten (it could be replayed)
            with pytest.raises(ProofCacheFullError) as caught:
                await proofs.check(scope, "t")
            assert (caught.value.status, caught.value.retry_after) == (503, 1)


async def test_a_shared_replay_file_is_used_by_two_apps(
    auth_server: FakeIntrospectionServer, tmp_path: Path
) -> None:
    key = new_key()
    token = bound(auth_server, key)
    db = tmp_path / "dpop" / "proofs.sqlite3"
    value = proof(key, "POST", URL, token=token)
    async with (
        weather_with(auth_server, dpop_replay_db=db) as first,
        weather_with(auth_server, dpop_replay_db=db) as second,
    ):
        assert (await post(first, token, dpop=value)).status_code == 200
        _refusal(await post(second, token, dpop=value), "invalid_dpop_proof")


def test_an_unusable_replay_file_stops_the_start(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    (shared / "proofs").mkdir()
    with pytest.raises(SettingsError, match="--dpop-replay-db"):
        build_app(make_settings(dpop_replay_db=shared / "proofs"))


def test_flags_and_banner(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path), "INTROSPECTION_CLIENT_ID": "a"}
    env["INTROSPECTION_CLIENT_SECRET"] = "b" * 32
    plain = settings_from([], env)
    assert (plain.require_dpop, plain.dpop_nonce, plain.dpop_replay_db) == (False, False, None)
    assert "DPoP (RFC 9449): accepted; proofs remembered in memory" in "\n".join(
        startup_banner(plain)
    )
    flags = settings_from(
        ["--require-dpop", "--dpop-nonce", "--dpop-replay-db", str(tmp_path / "d" / "p")], env
    )
    by_env = settings_from(
        [],
        {
            **env,
            "WEATHER_REQUIRE_DPOP": "1",
            "WEATHER_DPOP_NONCE": "yes",
            "WEATHER_DPOP_REPLAY_DB": str(tmp_path / "d" / "p"),
        },
    )
    for settings in (flags, by_env):
        assert settings.require_dpop
        assert settings.dpop_nonce
        assert settings.dpop_replay_db == tmp_path / "d" / "p"
    text = "\n".join(startup_banner(flags))
    assert "required, bearer tokens refused, with server nonces; proofs remembered in" in text


def test_a_gate_without_dpop_challenges_with_bearer_only() -> None:
    from secure_mcp.weather.bearer import Schemes
    from secure_mcp.weather.errors import InvalidTokenError

    found = Schemes().challenges(InvalidTokenError(), "https://rs/prm", ["s"], "Bearer")
    assert found == [
        'Bearer resource_metadata="https://rs/prm", scope="s", error="invalid_token", '
        'error_description="The access token is invalid, expired, revoked or not issued for '
        'this server."'
    ]

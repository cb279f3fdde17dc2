"""The whole weather app in process: every authorization answer, metadata, health, tools."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from secure_mcp.common.resource_credentials import ResourceCredentials, save_all
from secure_mcp.weather.app import RequireVerified, Seams, build_app, startup_banner
from secure_mcp.weather.settings import settings_from
from tests.support.weather_app import (
    CHALLENGE,
    CREDENTIALS,
    INITIALIZE,
    INVALID_TOKEN,
    ISSUER,
    MCP_HEADERS,
    ORIGIN,
    RESOURCE,
    FakeIntrospectionServer,
    access_token,
    make_settings,
    post_mcp,
    serving,
)

REFUSED_TOKENS = [
    pytest.param({"active": False}, id="inactive"),
    pytest.param({"exp": int(time.time()) - 5}, id="expired"),
    pytest.param({"aud": "http://127.0.0.1:9999/mcp"}, id="foreign-audience"),
    pytest.param({"aud": ["http://other/mcp"]}, id="foreign-audience-list"),
    pytest.param({"aud": RESOURCE + "/"}, id="audience-trailing-slash"),
    pytest.param({"iss": "http://evil.example"}, id="wrong-issuer"),
    pytest.param({"token_type": "refresh_token"}, id="refresh-token"),
    # far ahead: this list is made when the tests are collected, and the whole suite takes minutes
    pytest.param({"nbf": int(time.time()) + 30 * 24 * 3600}, id="not-yet-valid"),
    pytest.param({"exp": "soon"}, id="malformed-exp"),
]


@pytest.mark.parametrize("claims", REFUSED_TOKENS)
async def test_invalid_token_is_401_invalid_token(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer, claims: dict[str, Any]
) -> None:
    token = auth_server.grant("tok", **claims)
    response = await post_mcp(weather, token)
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == INVALID_TOKEN
    assert response.json()["error"] == "invalid_token"


async def test_unknown_token_is_401_invalid_token(weather: httpx2.AsyncClient) -> None:
    response = await post_mcp(weather, "never-issued")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == INVALID_TOKEN


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"authorization": "Basic dXNlcjpwdw=="}, id="other-scheme"),
    ],
)
async def test_missing_token_is_401_challenge_without_error(
    weather: httpx2.AsyncClient, headers: dict[str, str]
) -> None:
    response = await weather.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == CHALLENGE
    assert "error" not in response.json()


@pytest.mark.parametrize(
    ("url", "authorization", "extra"),
    [
        pytest.param("/mcp?access_token=tok", None, [], id="query-token"),
        pytest.param("/mcp?x=1&access_token=", "Bearer tok", [], id="query-and-header"),
        pytest.param("/mcp?access%5Ftoken=tok", "Bearer tok", [], id="query-name-encoded"),
        pytest.param("/mcp", "Bearer a b", [], id="bad-token-syntax"),
        pytest.param("/mcp", "Bearer ", [], id="empty-token"),
        pytest.param("/mcp", "Bearer tok", [("authorization", "Bearer tok")], id="two-headers"),
    ],
)
async def test_malformed_request_is_400_invalid_request(
    weather: httpx2.AsyncClient,
    auth_server: FakeIntrospectionServer,
    url: str,
    authorization: str | None,
    extra: list[tuple[str, str]],
) -> None:
    auth_server.grant("tok")
    headers = list(MCP_HEADERS.items()) + extra
    if authorization is not None:
        headers.append(("authorization", authorization))
    response = await weather.post(url, json=INITIALIZE, headers=headers)
    assert response.status_code == 400
    assert response.headers["www-authenticate"].startswith(f'{CHALLENGE}, error="invalid_request"')
    assert response.json()["error"] == "invalid_request"
    assert auth_server.introspections == 0


async def test_insufficient_scope_is_403(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("tok", scope="profile weather:write")
    response = await post_mcp(weather, token)
    assert response.status_code == 403
    assert response.headers.get_list("www-authenticate")[0] == (
        f'{CHALLENGE}, error="insufficient_scope", error_description="The access token does not '
        'carry the scope this server requires."'
    )


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({}, id="string-audience"),
        pytest.param({"aud": ["http://other/mcp", RESOURCE]}, id="audience-list"),
        pytest.param({"scope": "openid weather:read"}, id="extra-scope"),
        pytest.param({"iss": None, "token_type": None, "exp": None}, id="optional-claims-absent"),
    ],
)
async def test_valid_token_reaches_mcp(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer, claims: dict[str, Any]
) -> None:
    token = auth_server.grant("tok", **claims)
    for key in [k for k, v in claims.items() if v is None]:
        del auth_server.tokens[token][key]
    response = await post_mcp(weather, token)
    assert response.status_code == 200, response.text
    assert "serverInfo" in response.text


async def test_active_result_cached_so_one_introspection(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("tok")
    for _ in range(3):
        assert (await post_mcp(weather, token)).status_code == 200
    assert auth_server.introspections == 1
    assert auth_server.metadata_fetches == 1


async def test_inactive_result_not_cached(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    assert (await post_mcp(weather, access_token("later"))).status_code == 401
    auth_server.grant("later")
    assert (await post_mcp(weather, access_token("later"))).status_code == 200
    assert auth_server.introspections == 2


async def test_unreachable_auth_server_is_503_then_recovers(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("tok")
    auth_server.down = True
    response = await post_mcp(weather, token)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The authorization server cannot be reached to check the token; "
        "retry shortly.",
    }
    auth_server.down = False
    assert (await post_mcp(weather, token)).status_code == 200


async def test_cached_token_survives_auth_server_outage(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("tok")
    assert (await post_mcp(weather, token)).status_code == 200
    auth_server.down = True
    assert (await post_mcp(weather, token)).status_code == 200


@pytest.fixture
async def uncached(auth_server: FakeIntrospectionServer) -> AsyncIterator[httpx2.AsyncClient]:
    """The app with the introspection cache off."""
    settings = make_settings(introspection_cache_ttl=0)
    app = build_app(settings, seams=Seams(introspection_transport=auth_server.transport()))
    async with serving(app) as client:
        yield client


async def test_revocation_is_immediate_without_cache(
    uncached: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    token = auth_server.grant("tok")
    assert (await post_mcp(uncached, token)).status_code == 200
    assert auth_server.introspections == 1  # the SDK's second check reused the verdict
    auth_server.tokens[token]["active"] = False
    assert (await post_mcp(uncached, token)).status_code == 401


async def test_protected_resource_metadata(weather: httpx2.AsyncClient) -> None:
    response = await weather.get("/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 200
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["weather:read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Weather MCP server",
        "dpop_signing_alg_values_supported": ["ES256", "ES384", "ES512", "PS256", "RS256"],
        "dpop_bound_access_tokens_required": False,
    }


async def test_health_needs_no_token(weather: httpx2.AsyncClient) -> None:
    response = await weather.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_unknown_paths_are_closed_by_default(weather: httpx2.AsyncClient) -> None:
    response = await weather.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == CHALLENGE


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"host": "evil.example:8000"}, 421, id="foreign-host"),
        pytest.param({"origin": "http://evil.example"}, 403, id="foreign-origin"),
        pytest.param({"origin": "http://localhost:8000"}, 200, id="loopback-origin"),
    ],
)
async def test_dns_rebinding_protection(
    weather: httpx2.AsyncClient,
    auth_server: FakeIntrospectionServer,
    headers: dict[str, str],
    status: int,
) -> None:
    token = auth_server.grant("tok")
    response = await post_mcp(weather, token, headers)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        pytest.param("POST", "/mcp", {"host": "evil.example:8000"}, 421, id="mcp-foreign-host"),
        pytest.param("POST", "/mcp", {"origin": "http://evil.example"}, 403, id="mcp-origin"),
        pytest.param("POST", "/mcp", {"origin": "null"}, 403, id="mcp-null-origin"),
        pytest.param("GET", "/health", {"host": "evil.example"}, 421, id="health-foreign-host"),
        pytest.param(
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
            {"origin": "https://inspector.example"},
            200,
            id="metadata-any-origin",
        ),
        pytest.param("POST", "/mcp", {"origin": "http://127.0.0.1:8000"}, 401, id="own-origin"),
    ],
)
async def test_host_and_origin_are_checked_before_the_token(
    weather: httpx2.AsyncClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    # A DNS-rebinding page has no token: it must get 421/403, not the challenge (which would
    # tell it where the metadata is and which scopes to ask for). Browsers may read the
    # metadata from any origin (CORS), so Origin is not checked there.
    response = await weather.request(method, path, headers=headers)
    assert response.status_code == status
    if status in (421, 403):
        assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_client_lists_and_calls_tools(
    weather: httpx2.AsyncClient,
    auth_server: FakeIntrospectionServer,
    mode: Literal["auto", "legacy"],
) -> None:
    # Both the 2026-07-28 revision (auto) and 2025-11-25 (legacy) against the stateless server.
    weather.headers["authorization"] = f"Bearer {auth_server.grant('tok')}"
    transport = streamable_http_client(f"{ORIGIN}/mcp", http_client=weather)
    async with Client(transport, mode=mode) as client:
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        alerts = await client.call_tool("get_alerts", {"state": "fl"})
        forecast = await client.call_tool("get_forecast", {"latitude": 33.8, "longitude": -117.882})
    assert names == ["get_alerts", "get_forecast"]
    assert not alerts.is_error
    assert alerts.structured_content is not None
    assert alerts.structured_content["count"] == 4
    assert not forecast.is_error
    assert "Forecast for Anaheim, CA" in forecast.content[0].text  # type: ignore[union-attr]


async def test_mcp_is_served_without_sessions(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    # One identity cannot take the server's sessions: there are none to take.
    token = auth_server.grant("tok")
    for _ in range(3):
        response = await post_mcp(weather, token)
        assert response.status_code == 200
        assert "mcp-session-id" not in response.headers
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    stream = await weather.get("/mcp", headers=headers)
    assert stream.status_code == 405  # no standalone stream that would be held open for nothing
    assert stream.headers["allow"] == "POST"
    assert (await weather.delete("/mcp", headers=headers)).status_code == 405
    assert (await weather.get("/mcp", headers=MCP_HEADERS)).status_code == 401  # closed first


async def test_websocket_scope_is_closed() -> None:
    app = build_app(make_settings())
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await app({"type": "websocket", "path": "/mcp", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_auth_off_app_serves_tools_without_token() -> None:
    app = build_app(make_settings(credentials=None), require_auth=False)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=ORIGIN) as http:
            assert (await post_mcp(http, None)).status_code == 200
            assert (await http.get("/.well-known/oauth-protected-resource/mcp")).status_code == 404


def test_auth_needs_credentials() -> None:
    from secure_mcp.weather.settings import SettingsError

    with pytest.raises(SettingsError, match="credentials"):
        build_app(make_settings(credentials=None))


def test_startup_banner_announces_replay_loudly() -> None:
    lines = startup_banner(make_settings(introspection_cache_ttl=0, credentials_source="env"))
    assert any("NWS REPLAY MODE" in line for line in lines)
    assert "weather: introspecting as weather-rs (credentials from env)" in lines
    assert not any("rs-secret" in line for line in lines)
    assert any("introspection cache 0s (off)" in line for line in lines)
    live = startup_banner(make_settings(nws_replay=False, credentials=None))
    assert not any("REPLAY" in line for line in live)
    assert any("NWS API https://api.weather.gov" in line for line in live)


TOOL_SCOPES = (
    ("get_alerts", ("weather:alerts",)),
    ("get_forecast", ("weather:forecast", "weather:read")),
)


def test_startup_banner_names_the_token_check_and_client_limits() -> None:
    lines = startup_banner(make_settings())
    assert (
        "weather: bearer tokens: JWTs (RFC 9068) checked here against the issuer's keys, others "
        "checked for oauth.py's prefix and checksum, then introspected; "
        "30 invalid per minute per address, then 429"
    ) in lines
    assert (
        "weather: clients: request head within 10 s, body within 30 s; "
        "at most 512 connections, 256 per address"
    ) in lines
    other = startup_banner(make_settings(local_token_check=False, failed_token_limit=5))
    assert any("keys, others introspected; 5 invalid" in line for line in other)
    jwt = startup_banner(make_settings(introspect_jwt=True, tool_scopes=TOOL_SCOPES))
    assert any("issuer's keys and introspected, others" in line for line in jwt)
    assert any(
        line.endswith(
            "required scope weather:read; get_alerts needs weather:alerts; "
            "get_forecast needs weather:forecast weather:read"
        )
        for line in jwt
    )
    bare = startup_banner(make_settings(required_scopes=(), tool_scopes=TOOL_SCOPES))
    assert any("required scope (none); get_alerts" in line for line in bare)


async def test_nothing_reaches_the_mcp_server_unverified() -> None:
    # Defence in depth: were a request ever to bypass the bearer gate, the guard refuses it.
    reached: list[str] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    guard = RequireVerified(inner)
    await guard({"type": "http", "path": "/mcp", "headers": []}, receive, send)
    assert sent[0]["status"] == 401
    assert reached == []
    token = AccessToken(token="t", client_id="c", scopes=[])
    await guard({"type": "http", "path": "/mcp", "user": AuthenticatedUser(token)}, receive, send)
    await guard({"type": "lifespan", "path": ""}, receive, send)
    assert reached == ["/mcp", ""]


async def test_credentials_refused_after_an_oauth_reset_are_read_again(
    auth_server: FakeIntrospectionServer, tmp_path: Path
) -> None:
    """oauth.py's data folder was deleted and it started afresh: new credentials in its file."""
    data_dir = tmp_path / "oauth"
    save_all(data_dir, {RESOURCE: ResourceCredentials("old-rs", "old-secret")})
    argv = ["--resource-url", RESOURCE, "--auth-server", ISSUER, "--oauth-data-dir", str(data_dir)]
    settings = settings_from(argv, {})
    assert settings.credentials is not None
    assert settings.credentials.client_id == "old-rs"
    seams = Seams(introspection_transport=auth_server.transport())
    async with serving(build_app(settings, seams=seams)) as weather:
        token = auth_server.grant("tok")
        refused = await post_mcp(weather, token)
        assert refused.status_code == 503
        assert refused.json()["error"] == "introspection_refused"
        save_all(data_dir, {RESOURCE: CREDENTIALS})  # what oauth.py writes at its new start
        assert (await post_mcp(weather, token)).status_code == 200


async def test_credentials_from_the_environment_are_not_read_again(
    auth_server: FakeIntrospectionServer, tmp_path: Path
) -> None:
    env = {"INTROSPECTION_CLIENT_ID": "old-rs", "INTROSPECTION_CLIENT_SECRET": "old-secret"}
    argv = ["--resource-url", RESOURCE, "--oauth-data-dir", str(tmp_path / "none")]
    settings = settings_from(argv, env)
    save_all(tmp_path / "none", {RESOURCE: CREDENTIALS})  # never looked at: the env wins
    seams = Seams(introspection_transport=auth_server.transport())
    async with serving(build_app(settings, seams=seams)) as weather:
        response = await post_mcp(weather, auth_server.grant("tok"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "introspection_refused",
        "error_description": "This server cannot check tokens: the authorization server "
        "refuses its introspection credentials.",
    }

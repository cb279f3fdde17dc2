"""The real weather.py against the real oauth.py: tokens from a full flow, audience, revocation,
outage and recovery, and an SDK MCP client connecting end to end (NWS replayed, no internet)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata

from secure_mcp.weather.tools import REPLAY_NOTE
from tests.support.flows import Stack
from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port, run_to_exit
from tests.support.sdk_client import MemoryStorage
from tests.support.weather_app import INITIALIZE
from tests.support.weather_server import WeatherServer, run_weather_server

pytestmark = pytest.mark.process

REDIRECT = "http://127.0.0.1:9/callback"
CACHE_TTL = 1.0


@pytest.fixture
def stack(live_stack: Stack) -> Stack:
    """The run's shared oauth.py + weather.py."""
    return live_stack


async def metadata(oauth: OAuthServer) -> dict[str, str]:
    """The authorization server's RFC 8414 metadata."""
    async with httpx2.AsyncClient() as http:
        return dict((await http.get(oauth.metadata_url)).json())


async def obtain_token(oauth: OAuthServer, resource: str) -> tuple[str, str]:
    """(access token, client_id) from registration, PKCE authorization and code exchange."""
    meta = await metadata(oauth)
    async with httpx2.AsyncClient(timeout=10) as http:
        registration = await http.post(
            meta["registration_endpoint"],
            json={
                "redirect_uris": [REDIRECT],
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "application_type": "native",
                "client_name": "weather e2e",
            },
        )
        client_id = registration.json()["client_id"]
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge.decode().rstrip("="),
            "code_challenge_method": "S256",
            "state": secrets.token_urlsafe(16),
            "scope": "weather:read",
            "resource": resource,
        }
        location = await authorize_headlessly(
            http,
            f"{meta['authorization_endpoint']}?{urlencode(query)}",
            username=oauth.username,
            password=oauth.password,
        )
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = await http.post(
            meta["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": resource,
            },
        )
        assert token.status_code == 200, token.text
        return str(token.json()["access_token"]), client_id


async def call_mcp(weather: WeatherServer, token: str | None) -> httpx2.Response:
    """POST an initialize request with an optional bearer token."""
    headers = {"accept": "application/json, text/event-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    async with httpx2.AsyncClient(timeout=10) as http:
        return await http.post(weather.url, json=INITIALIZE, headers=headers)


async def test_unauthenticated_post_gets_challenge(stack: Stack) -> None:
    response = await call_mcp(stack.weather, None)
    assert response.status_code == 401
    prm = f"{stack.weather.origin}/.well-known/oauth-protected-resource/mcp"
    assert response.headers.get_list("www-authenticate")[0] == (
        f'Bearer resource_metadata="{prm}", scope="weather:read"'
    )
    async with httpx2.AsyncClient() as http:
        document = (await http.get(prm)).json()
    assert document["resource"] == stack.weather.url
    assert document["authorization_servers"] == [stack.oauth.issuer]


async def test_token_from_full_flow_accepted_foreign_token_refused(stack: Stack) -> None:
    mine, _ = await obtain_token(stack.oauth, stack.weather.url)
    foreign, _ = await obtain_token(stack.oauth, stack.foreign)
    assert (await call_mcp(stack.weather, mine)).status_code == 200
    refused = await call_mcp(stack.weather, foreign)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


async def test_revoked_token_refused_within_cache_bound(stack: Stack) -> None:
    token, client_id = await obtain_token(stack.oauth, stack.weather.url)
    assert (await call_mcp(stack.weather, token)).status_code == 200
    meta = await metadata(stack.oauth)
    async with httpx2.AsyncClient() as http:
        revoked = await http.post(
            meta["revocation_endpoint"], data={"token": token, "client_id": client_id}
        )
    assert revoked.status_code == 200
    deadline = time.monotonic() + CACHE_TTL + 1.0
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = (await call_mcp(stack.weather, token)).status_code
    assert status == 401


async def test_sdk_client_connects_lists_and_calls_both_tools(stack: Stack) -> None:
    pending: list[str] = []
    browser = httpx2.AsyncClient(timeout=10)

    async def redirect_handler(url: str) -> None:
        pending.append(url)

    async def callback_handler() -> AuthorizationCodeResult:
        location = await authorize_headlessly(
            browser, pending.pop(), username=stack.oauth.username, password=stack.oauth.password
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        return AuthorizationCodeResult(
            code=query["code"], state=query.get("state"), iss=query.get("iss")
        )

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=stack.weather.url,
        client_metadata=OAuthClientMetadata.model_validate(
            {
                "redirect_uris": [REDIRECT],
                "client_name": "sdk e2e",
                "token_endpoint_auth_method": "none",
            }
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with (
        browser,
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(stack.weather.url, http_client=http)) as client,
    ):
        names = sorted(tool.name for tool in (await client.list_tools()).tools)
        alerts = await client.call_tool("get_alerts", {"state": "HI"})
        forecast = await client.call_tool("get_forecast", {"latitude": 33.8, "longitude": -117.9})
    assert names == ["get_alerts", "get_forecast"]
    assert not alerts.is_error
    assert alerts.structured_content is not None
    assert alerts.structured_content["count"] == 5
    assert not forecast.is_error
    assert storage.tokens is not None
    assert storage.client is not None
    # Replay mode is visible where the answer is read (Claude, /call) and honest in the log.
    for result in (alerts, forecast):
        assert result.structured_content is not None
        assert result.structured_content["replay"] is True
        assert result.content[0].text.startswith(REPLAY_NOTE)
    log = stack.weather.program.output()
    assert "api.weather.gov" not in log.split("INFO:     Uvicorn running")[-1]  # never left
    assert "NWS replay: GET /alerts/active?area=HI answered from a recording" in log


async def test_auth_server_down_gives_503_and_restart_recovers(tmp_path: Path) -> None:
    port, as_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with run_oauth_server(tmp_path, resources=[resource], port=as_port) as oauth:
        token, _ = await obtain_token(oauth, resource)
        data_dir = oauth.data_dir
    with run_weather_server(
        tmp_path,
        auth_server=oauth.issuer,
        oauth_data_dir=data_dir,
        port=port,
        extra_args=("--introspection-cache-ttl", "0"),
    ) as weather:
        down = await call_mcp(weather, token)
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        assert down.json()["error"] == "temporarily_unavailable"
        with run_oauth_server(tmp_path, resources=[resource], port=as_port):
            assert (await call_mcp(weather, token)).status_code == 200
        assert (await call_mcp(weather, token)).status_code == 503
        assert "Traceback" not in weather.program.output()


def test_missing_credentials_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = {"INTROSPECTION_CLIENT_ID": "", "INTROSPECTION_CLIENT_SECRET": "", "PATH": "/usr/bin"}
    result = run_to_exit("weather.py", ["--oauth-data-dir", str(tmp_path / "none")], env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "INTROSPECTION_CLIENT_ID and INTROSPECTION_CLIENT_SECRET" in result.stderr
    assert "start oauth.py first with the same OAUTH_DATA_DIR" in result.stderr

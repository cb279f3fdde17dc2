"""JWT access tokens with the real programs: the client, an outage, revocation, step-up per tool."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from secure_mcp.client.connection import connect
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common import token_format
from tests.support.flows import Stack, live_auth, mcp_post, run_stack
from tests.support.headless import HeadlessBrowser, use_weather
from tests.support.processes import ROOT
from tests.support.weather_server import run_weather_server

pytestmark = pytest.mark.process
JWT_ENV = {"OAUTH_ACCESS_TOKEN_FORMAT": "jwt", "OAUTH_ACCESS_TOKEN_TTL": ""}  # 300 s default
PER_TOOL = "get_alerts=weather:alerts,get_forecast=weather:forecast"
TOOLS_CALL = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "get_alerts", "arguments": {"state": "FL"}},
}
LEGACY = {"mcp-protocol-version": "2025-11-25"}


@contextlib.contextmanager
def jwt_stack(tmp_path: Path, *weather_args: str, scopes: str = "weather:read") -> Iterator[Stack]:
    """oauth.py issuing JWTs, and weather.py (cache 1 s) with `weather_args`."""
    env = {**JWT_ENV, "OAUTH_SCOPES": scopes}
    with run_stack(tmp_path, oauth_env=env, weather_args=weather_args) as stack:
        yield stack


async def test_the_client_signs_in_and_calls_tools_with_jwts(tmp_path: Path) -> None:
    with jwt_stack(tmp_path) as stack:
        browser = HeadlessBrowser(stack.oauth)
        settings = ClientSettings(state_dir=tmp_path / "state", server_url=stack.weather.url)
        await use_weather(settings, browser, [])
        await use_weather(settings, browser, [])  # the stored JWT, no second sign-in
        banner = stack.oauth.program.output()
    assert len(browser.opened) == 1
    state = (settings.state_dir / "oauth-state.json").read_text()
    token = state.split('"access_token": "')[1].split('"')[0]
    assert token_format.looks_like_jwt(token)
    assert "access tokens: JWT (RFC 9068, ES256), 300 s" in banner


async def test_an_authorization_server_outage_does_not_affect_valid_jwts(tmp_path: Path) -> None:
    with jwt_stack(tmp_path) as stack:
        async with live_auth(stack.oauth, stack.weather.url) as auth:
            _, used = await auth.tokens()
            _, unused = await auth.tokens()  # issued before the outage, presented after
            _, opaque_check = await auth.tokens()
        assert (await mcp_post(stack.weather.url, used["access_token"])).status_code == 200
        stack.oauth.program.stop()  # the authorization server is gone
        for token in (used["access_token"], unused["access_token"]):
            response = await mcp_post(stack.weather.url, token, body=TOOLS_CALL, headers=LEGACY)
            assert response.status_code == 200, response.text
            assert '"isError":false' in response.text.replace(" ", "")
        header, claims, _ = used["access_token"].split(".")
        forged = f"{header}.{claims}.{unused['access_token'].split('.')[2]}"  # another signature
        assert (await mcp_post(stack.weather.url, forged)).status_code == 401
        # an opaque-format token still needs the authorization server: 503, never a pass
        opaque = token_format.mint(token_format.ACCESS_PREFIX)
        assert (await mcp_post(stack.weather.url, opaque)).status_code == 503
        assert opaque_check["refresh_token"].startswith("smcp_rt_")


async def test_revocation_waits_for_expiry_unless_introspect_jwt(tmp_path: Path) -> None:
    with jwt_stack(tmp_path) as stack:
        async with live_auth(stack.oauth, stack.weather.url) as auth:
            flow, body = await auth.tokens()
            token = body["access_token"]
            assert (await mcp_post(stack.weather.url, token)).status_code == 200
            assert (await auth.revoke(flow, token)).status_code == 200
            assert await auth.introspect(token) == {"active": False}
            # checked locally: still accepted until it expires (the documented bound)
            assert (await mcp_post(stack.weather.url, token)).status_code == 200
        stack.weather.program.stop()  # the same resource, now with --introspect-jwt
        with run_weather_server(
            tmp_path,
            auth_server=stack.oauth.issuer,
            oauth_data_dir=stack.oauth.data_dir,
            port=stack.weather.port,
            extra_args=("--introspect-jwt", "--introspection-cache-ttl", "0"),
        ) as strict:
            response = await mcp_post(strict.url, token)
            assert response.status_code == 401
            assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_tool_needing_another_scope_makes_the_client_step_up(tmp_path: Path) -> None:
    scopes = "weather:alerts weather:forecast"
    with jwt_stack(tmp_path, "--tool-scopes", PER_TOOL, scopes=scopes) as stack:
        browser = HeadlessBrowser(stack.oauth)
        settings = ClientSettings(
            state_dir=tmp_path / "state", server_url=stack.weather.url, scope="weather:alerts"
        )
        lines: list[str] = []
        async with connect(settings, write=lines.append, opener=browser.open) as session:
            before = sorted(tool.name for tool in await session.list_tools())
            alerts = await session.call_tool("get_alerts", {"state": "FL"})
            assert len(browser.opened) == 1
            forecast = await session.call_tool(
                "get_forecast", {"latitude": 33.8, "longitude": -117.9}
            )  # 403 insufficient_scope -> a second sign-in for the union -> the call again
            after = sorted(tool.name for tool in await session.list_tools())
        weather_log = stack.weather.program.output()
    assert before == ["get_alerts"]  # tools/list shows only what the token may call
    assert not alerts.is_error
    assert not forecast.is_error, forecast.content
    assert after == ["get_alerts", "get_forecast"]
    assert len(browser.opened) == 2
    first, second = (parse_qs(urlsplit(url).query)["scope"] for url in browser.opened)
    assert first == ["weather:alerts"]
    assert second == ["weather:alerts weather:forecast"]
    assert "get_alerts needs weather:alerts; get_forecast needs weather:forecast" in weather_log


def test_keys_command_on_the_data_folder(tmp_path: Path) -> None:
    env = {**os.environ, "OAUTH_DATA_DIR": str(tmp_path / "data"), **JWT_ENV}
    command = [sys.executable, str(ROOT / "oauth.py"), "keys", "rotate"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("New signing key ")
    assert "published, signs from" in done.stdout
    assert (tmp_path / "data" / "signing-keys.json").stat().st_mode & 0o777 == 0o600
    bad = subprocess.run(
        [*command[:-1], "frobnicate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "usage: oauth.py keys {list,rotate}" in bad.stderr

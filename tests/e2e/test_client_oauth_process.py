"""The client's sign-in against the real oauth.py and weather.py processes (NWS replayed).

The "browser" is headless: it submits the real login and consent forms, then follows the
redirect to the client's real loopback listener, exactly as a browser would.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from secure_mcp.client.connection import logout_stored
from secure_mcp.client.settings import ClientSettings
from tests.support.flows import Stack, run_stack
from tests.support.headless import HeadlessBrowser, use_weather

pytestmark = pytest.mark.process


@pytest.fixture
def stack(live_stack: Stack) -> Stack:
    """The run's shared oauth.py + weather.py."""
    return live_stack


def client_settings(tmp_path: Path, stack: Stack) -> ClientSettings:
    """Settings for a fresh client state folder against the stack's weather server."""
    return ClientSettings(state_dir=tmp_path / "client-state", server_url=stack.weather.url)


async def test_first_run_authorizes_second_run_uses_stored_tokens(
    tmp_path: Path, stack: Stack
) -> None:
    browser = HeadlessBrowser(stack.oauth)
    settings = client_settings(tmp_path, stack)
    lines: list[str] = []
    await use_weather(settings, browser, lines)
    assert len(browser.opened) == 1
    assert "You can close this tab" in browser.pages[-1]
    assert any(browser.opened[0] in line for line in lines)

    await use_weather(settings, browser, lines)
    assert len(browser.opened) == 1  # no second authorization


async def test_logout_revokes_the_stored_tokens(tmp_path: Path, stack: Stack) -> None:
    browser = HeadlessBrowser(stack.oauth)
    settings = client_settings(tmp_path, stack)
    await use_weather(settings, browser, [])
    state = (settings.state_dir / "oauth-state.json").read_text()
    access_token = state.split('"access_token": "')[1].split('"')[0]

    assert await logout_stored(settings, write=[].append)
    await asyncio.sleep(1.2)  # past weather.py's introspection cache
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            stack.weather.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]
    assert access_token not in settings.state_dir.joinpath("oauth-state.json").read_text()

    # Signing in again reuses the stored registration from a new ephemeral loopback port:
    # the server matches loopback redirect URIs on any port (RFC 8252 7.3).
    await use_weather(settings, browser, [])
    assert len(browser.opened) == 2
    first, second = (parse_qs(urlsplit(url).query) for url in browser.opened)
    assert first["client_id"] == second["client_id"]  # the stored registration
    assert first["redirect_uri"] != second["redirect_uri"]


async def test_expired_token_is_refreshed_without_a_browser(tmp_path: Path) -> None:
    with run_stack(tmp_path, oauth_env={"OAUTH_ACCESS_TOKEN_TTL": "2"}) as short:
        browser = HeadlessBrowser(short.oauth)
        settings = client_settings(tmp_path, short)
        await use_weather(settings, browser, [])
        await asyncio.sleep(2.5)  # the access token has expired
        lines: list[str] = []
        await use_weather(dataclasses.replace(settings, verbose=True), browser, lines)
    assert len(browser.opened) == 1
    assert any("using stored tokens from" in line for line in lines)
    assert any(
        line.startswith("[oauth] refresh: POST") and line.endswith("-> HTTP 200") for line in lines
    )

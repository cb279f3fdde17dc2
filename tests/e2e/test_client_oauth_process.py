"""The client's sign-in against the real oauth.py and weather.py processes (NWS replayed).

The "browser" is headless: it submits the real login and consent forms, then follows the
redirect to the client's real loopback listener, exactly as a browser would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from secure_mcp.client.connection import connect, logout_stored
from secure_mcp.client.settings import ClientSettings
from tests.support.headless import authorize_headlessly
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import WeatherServer, run_weather_server

pytestmark = pytest.mark.process


@dataclass
class Stack:
    """oauth.py and weather.py, running together."""

    oauth: OAuthServer
    weather: WeatherServer


@contextlib.contextmanager
def run_stack(tmp_path: Path, **oauth_env: str) -> Iterator[Stack]:
    """Start both programs (1 s introspection cache) and stop them at block end."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with (
        run_oauth_server(tmp_path, resources=[resource], extra_env=oauth_env) as oauth,
        run_weather_server(
            tmp_path,
            auth_server=oauth.issuer,
            oauth_data_dir=oauth.data_dir,
            port=port,
            extra_args=("--introspection-cache-ttl", "1"),
        ) as weather,
    ):
        yield Stack(oauth, weather)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The programs with their default one-hour access tokens."""
    with run_stack(tmp_path_factory.mktemp("client-e2e")) as running:
        yield running


@dataclass
class HeadlessBrowser:
    """`webbrowser.open` that signs in on the real pages and returns to the loopback listener."""

    oauth: OAuthServer
    opened: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def open(self, url: str) -> bool:
        """Start the visit in the background, as a real browser would."""
        self.opened.append(url)
        task = asyncio.get_running_loop().create_task(self._visit(url))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as client:
            location = await authorize_headlessly(
                client, url, username=self.oauth.username, password=self.oauth.password
            )
            assert location.startswith("http://127.0.0.1:")
            self.pages.append((await client.get(location)).text)


async def use_weather(settings: ClientSettings, browser: HeadlessBrowser, lines: list[str]) -> None:
    """One client run: connect, list the tools, call get_alerts."""
    async with connect(settings, write=lines.append, opener=browser.open) as session:
        names = {tool.name for tool in await session.list_tools()}
        assert "get_alerts" in names
        result = await session.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error, result.content


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
    assert "You can close this tab" in browser.pages[0]
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
    with run_stack(tmp_path, OAUTH_ACCESS_TOKEN_TTL="2") as short:
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

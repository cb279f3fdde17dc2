"""The authorization server restarted or down, under our client's live session and weather.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from secure_mcp.client.auth.dpop import DpopKeys
from secure_mcp.client.connection import ClientConnectError, McpToolSession, connect
from secure_mcp.client.settings import ClientSettings
from tests.support.dpop import proof
from tests.support.flows import mcp_post
from tests.support.headless import HeadlessBrowser
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import free_port
from tests.support.weather_server import WeatherServer, run_weather_server

pytestmark = pytest.mark.process


def ignore(line: str) -> None:
    """Discard what the client writes."""


ACCESS_TTL = 3  # seconds: short enough that the client must refresh after the restart


@dataclass
class Outage:
    """weather.py (no introspection cache) and how to (re)start its oauth.py."""

    tmp_path: Path
    as_port: int
    resource: str
    weather: WeatherServer

    def oauth(self, access_ttl: int = 3600) -> contextlib.AbstractContextManager[OAuthServer]:
        """Start oauth.py on the same port and data folder."""
        env = {"OAUTH_ACCESS_TOKEN_TTL": str(access_ttl)}
        return run_oauth_server(
            self.tmp_path, resources=[self.resource], port=self.as_port, extra_env=env
        )


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """weather.py with cache TTL 0, so every request asks oauth.py (started once for its data)."""
    tmp_path = tmp_path_factory.mktemp("outage")
    as_port, port = free_port(), free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    half = Outage(tmp_path, as_port, resource, None)  # type: ignore[arg-type]
    with half.oauth() as oauth:
        data_dir, issuer = oauth.data_dir, oauth.issuer
    with run_weather_server(
        tmp_path,
        auth_server=issuer,
        oauth_data_dir=data_dir,
        port=port,
        extra_args=("--introspection-cache-ttl", "0"),
    ) as weather:
        yield Outage(tmp_path, as_port, resource, weather)
        assert "Traceback" not in weather.program.output()


async def alerts(session: McpToolSession) -> None:
    """One successful tool call."""
    result = await session.call_tool("get_alerts", {"state": "HI"})
    assert not result.is_error, result.content


def refresh_token(settings: ClientSettings) -> str:
    """The refresh token the client stored."""
    state = json.loads((settings.state_dir / "oauth-state.json").read_text())
    (per_resource,) = state["tokens"].values()
    (entry,) = per_resource.values()
    return str(entry["token"]["refresh_token"])


async def test_restart_mid_session_keeps_registration_and_refresh_token(
    outage: Outage, tmp_path: Path
) -> None:
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=outage.weather.url)
    lines: list[str] = []
    with outage.oauth(ACCESS_TTL) as oauth:
        browser = HeadlessBrowser(oauth)
        async with connect(settings, write=lines.append, opener=browser.open) as session:
            await alerts(session)
            before = refresh_token(settings)
            oauth.program.stop()  # the authorization server goes away mid-session
            with pytest.raises(ClientConnectError, match=r"check tokens \(HTTP 503\)"):
                await session.call_tool("get_alerts", {"state": "HI"})  # the session survives
            with outage.oauth(ACCESS_TTL):  # and comes back on the same port and data folder
                await asyncio.sleep(ACCESS_TTL + 0.5)  # the access token has expired meanwhile
                await alerts(session)  # refreshed at the restarted server, no sign-in
                assert refresh_token(settings) != before  # rotated: the old one was still known
                async with connect(settings, write=lines.append, opener=browser.open) as again:
                    await alerts(again)  # a new run: stored registration and tokens
    assert len(browser.opened) == 1  # signed in once, at the very start


async def test_outage_mid_session_is_explained(outage: Outage, tmp_path: Path) -> None:
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=outage.weather.url)
    with outage.oauth() as oauth:
        browser = HeadlessBrowser(oauth)
        async with connect(settings, write=ignore, opener=browser.open) as session:
            await alerts(session)
            oauth.program.stop()
            with pytest.raises(ClientConnectError) as caught:
                await session.call_tool("get_alerts", {"state": "HI"})
    assert str(caught.value) == (
        f"The MCP server at {outage.weather.url} cannot reach its authorization server to check "
        "tokens (HTTP 503); is the authorization server running?"
    )
    assert caught.value.error == "temporarily_unavailable"


async def test_auth_server_down_weather_503_client_explains_both_recover(
    outage: Outage, tmp_path: Path
) -> None:
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=outage.weather.url)
    with outage.oauth() as oauth:
        browser = HeadlessBrowser(oauth)
        async with connect(settings, write=ignore, opener=browser.open) as session:
            await alerts(session)
            token = json.loads((settings.state_dir / "oauth-state.json").read_text())
    (per_resource,) = token["tokens"].values()
    (entry,) = per_resource.values()
    access = entry["token"]["access_token"]

    down = await mcp_post(outage.weather.url, access)  # oauth.py is stopped now
    assert down.status_code == 503
    assert down.headers["retry-after"] == "5"
    assert down.json()["error"] == "temporarily_unavailable"
    assert "www-authenticate" not in down.headers  # not a 401: no pointless sign-in
    with pytest.raises(ClientConnectError) as caught:
        async with connect(settings, write=ignore, opener=browser.open):
            pass
    assert caught.value.error == "temporarily_unavailable"
    assert str(caught.value) == (
        f"The MCP server at {outage.weather.url} cannot reach its authorization server to check "
        "tokens (HTTP 503); is the authorization server running?"
    )

    with outage.oauth():  # both recover, with the stored (DPoP-bound) token and the client's key
        key = DpopKeys(settings.state_dir).bound_key(access)
        assert key is not None
        signed = {"DPoP": proof(key, "POST", outage.weather.url, token=access)}
        headers = {**signed, "authorization": f"DPoP {access}"}
        assert (await mcp_post(outage.weather.url, None, headers=headers)).status_code == 200
        async with connect(settings, write=ignore, opener=browser.open) as session:
            await alerts(session)
    assert len(browser.opened) == 1


async def test_first_sign_in_with_auth_server_down_is_explained(
    outage: Outage, tmp_path: Path
) -> None:
    settings = ClientSettings(state_dir=tmp_path / "client", server_url=outage.weather.url)
    opened: list[str] = []
    with pytest.raises(ClientConnectError) as caught:
        async with connect(settings, write=ignore, opener=opened.append):  # type: ignore[arg-type]
            pass
    assert str(caught.value) == (
        f"Cannot reach http://127.0.0.1:{outage.as_port}/.well-known/oauth-authorization-server"
        " (ConnectError); is the server running?"
    )
    assert opened == []  # no browser sent to a server that is not there

"""RFC 7009 revocation against our real authorization server: confidential clients sign out.

Our oauth and weather apps run in process. The authorization server insists on each client's
registered authentication method at /revoke, so these prove that a logout really ends the grant
(introspection says inactive), for client_secret_basic and client_secret_post alike.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken

from secure_mcp.client.auth.revocation import revoke_tokens
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import connect, logout_stored
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.private_files import write_private_json
from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.oauth.app import build_app as build_oauth_app
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.weather.app import Seams as WeatherSeams
from secure_mcp.weather.app import build_app as build_weather_app
from secure_mcp.weather.settings import WeatherSettings
from tests.support.client_fakes import RS_ORIGIN, RS_URL, Router
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import pkce, query_of
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME

ISSUER = "http://127.0.0.1:9000"
RS_CREDENTIALS = ResourceCredentials("weather-rs", "rs-secret-for-tests")
LOOPBACK = "http://127.0.0.1/callback"  # any port matches (RFC 8252 7.3)


@dataclass
class Stack:
    """Our oauth and weather apps behind one router, and a headless browser for sign-in."""

    router: Router
    visits: list[asyncio.Task[None]] = field(default_factory=list)

    def open(self, url: str) -> bool:
        """`webbrowser.open`: sign in on the real pages in the background."""
        self.visits.append(asyncio.get_running_loop().create_task(self._visit(url)))
        return True

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(transport=self.router) as http:
            location = await authorize_headlessly(
                http, url, username=TEST_USERNAME, password=TEST_PASSWORD
            )
        async with httpx2.AsyncClient() as listener:  # the client's real loopback listener
            await listener.get(location)

    async def register(self, method: str) -> dict[str, Any]:
        """A confidential client registered with `method` (RFC 7591)."""
        body = {
            "redirect_uris": [LOOPBACK],
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "application_type": "native",
            "client_name": f"confidential {method}",
        }
        async with httpx2.AsyncClient(transport=self.router) as http:
            response = await http.post(f"{ISSUER}/register", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def active(self, token: str) -> bool:
        """Whether the authorization server still honours `token` (RFC 7662)."""
        auth = (RS_CREDENTIALS.client_id, RS_CREDENTIALS.client_secret)
        async with httpx2.AsyncClient(transport=self.router) as http:
            answer = await http.post(f"{ISSUER}/introspect", data={"token": token}, auth=auth)
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["active"])


@asynccontextmanager
async def our_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """oauth + weather (NWS replayed) in process."""
    oauth_settings = OAuthSettings(
        data_dir=tmp_path / "oauth-data",
        issuer=ISSUER,
        resources=(RS_URL,),
        scopes=("weather:read",),
        demo_username=TEST_USERNAME,
        demo_password=TEST_PASSWORD,
        introspection_credentials=RS_CREDENTIALS,
    )
    oauth_app = build_oauth_app(oauth_settings)
    weather_settings = WeatherSettings(
        auth_server=ISSUER,
        resource_url=RS_URL,
        nws_replay=True,
        introspection_cache_ttl=0,
        credentials=RS_CREDENTIALS,
    )
    weather_app = build_weather_app(
        weather_settings,
        seams=WeatherSeams(introspection_transport=httpx2.ASGITransport(app=oauth_app)),
    )
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(oauth_app.router.lifespan_context(oauth_app))
        await stack.enter_async_context(weather_app.router.lifespan_context(weather_app))
        yield Stack(Router({ISSUER: oauth_app, RS_ORIGIN: weather_app}))


async def sign_in_as(stack: Stack, settings: ClientSettings) -> OAuthToken:
    """connect() once with the pre-registered client; the tokens it stored."""
    async with connect(
        settings, write=lambda line: None, http_transport=stack.router, opener=stack.open
    ) as session:
        assert not (await session.call_tool("get_alerts", {"state": "TX"})).is_error
    tokens = await FileTokenStorage(settings.state_dir, RS_URL).get_tokens()
    assert tokens is not None
    assert tokens.refresh_token is not None
    return tokens


async def test_logout_revokes_for_a_client_secret_basic_client(tmp_path: Path) -> None:
    lines: list[str] = []
    async with our_stack(tmp_path) as stack:
        client = await stack.register("client_secret_basic")
        settings = ClientSettings(
            state_dir=tmp_path / "client",
            server_url=RS_URL,
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            client_issuer=ISSUER,
        )
        tokens = await sign_in_as(stack, settings)
        assert await stack.active(tokens.access_token)
        assert await logout_stored(settings, lines.append, http_transport=stack.router)
        assert not await stack.active(tokens.access_token)
        assert not await stack.active(str(tokens.refresh_token))
    assert lines == [f"Signed out of {RS_URL}."]


async def test_a_refused_revocation_is_reported_and_the_tokens_still_deleted(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    async with our_stack(tmp_path) as stack:
        client = await stack.register("client_secret_basic")
        settings = ClientSettings(
            state_dir=tmp_path / "client",
            server_url=RS_URL,
            client_id=client["client_id"],
            client_secret=client["client_secret"],
            client_issuer=ISSUER,
        )
        tokens = await sign_in_as(stack, settings)
        storage = FileTokenStorage(settings.state_dir, RS_URL)
        [(issuer, _, stored)] = storage.all_tokens()
        assert stored is not None
        state = json.loads(storage.path.read_text())
        state["tokens"][issuer][RS_URL]["client"]["client_secret"] = "wrong"
        write_private_json(storage.path, state)
        assert await logout_stored(settings, lines.append, http_transport=stack.router)
        assert await stack.active(tokens.access_token)  # the server kept them
        assert await FileTokenStorage(settings.state_dir, RS_URL).get_tokens() is None
    assert lines[-1] == (
        f"Not fully signed out of {RS_URL}: the tokens were deleted here, but the authorization "
        "server did not revoke them; they stay valid until they expire."
    )
    assert "(HTTP 401)" in lines[0]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_revocation_authenticates_as_registered(tmp_path: Path, method: str) -> None:
    async with our_stack(tmp_path) as stack:
        client = await stack.register(method)
        tokens = await tokens_for(stack, client, method)
        async with httpx2.AsyncClient(transport=stack.router) as http:
            found = await http.get(f"{ISSUER}/.well-known/oauth-authorization-server")
            metadata = OAuthMetadata.model_validate(found.json())
            info = OAuthClientInformationFull.model_validate(client)
            assert await revoke_tokens(http, metadata, info, tokens, [].append)
        assert not await stack.active(tokens.access_token)
        assert not await stack.active(str(tokens.refresh_token))


async def tokens_for(stack: Stack, client: dict[str, Any], method: str) -> OAuthToken:
    """Authorize headlessly and redeem the code, authenticating as `method` (test-side code)."""
    verifier, challenge = pkce()
    query = httpx2.QueryParams(
        response_type="code",
        client_id=client["client_id"],
        redirect_uri="http://127.0.0.1:9/callback",
        code_challenge=challenge,
        code_challenge_method="S256",
        state="s",
        resource=RS_URL,
        scope="weather:read",
    )
    async with httpx2.AsyncClient(transport=stack.router) as http:
        location = await authorize_headlessly(
            http, f"{ISSUER}/authorize?{query}", username=TEST_USERNAME, password=TEST_PASSWORD
        )
        data = {
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "redirect_uri": "http://127.0.0.1:9/callback",
            "code_verifier": verifier,
            "resource": RS_URL,
        }
        secret = (client["client_id"], client["client_secret"])
        if method == "client_secret_post":
            data.update(client_id=secret[0], client_secret=secret[1])
            answer = await http.post(f"{ISSUER}/token", data=data)
        else:
            answer = await http.post(f"{ISSUER}/token", data=data, auth=secret)
    assert answer.status_code == 200, answer.text
    return OAuthToken.model_validate(answer.json())

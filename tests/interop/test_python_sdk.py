"""The MCP Python SDK's own OAuthClientProvider (no wrapper of ours) against the real programs.

Discovery (RFC 9728, RFC 8414), dynamic registration (RFC 7591), authorization with PKCE S256
and `resource` (the real login and consent forms, posted headlessly), token use, a refresh
once the short-lived access token expires, and tool calls against weather.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.interop.conftest import Stack
from tests.support.headless import authorize_headlessly

pytestmark = pytest.mark.process

REDIRECT = "http://127.0.0.1:9/callback"  # loopback: oauth.py accepts any port (RFC 8252 7.3)


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage protocol in memory, keeping every token set it was given."""

    saved: list[OAuthToken] = field(default_factory=list)
    client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.saved[-1] if self.saved else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.saved.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class HeadlessUser:
    """The redirect and callback handlers: sign in on the real pages, read the redirect."""

    stack: Stack
    opened: list[str] = field(default_factory=list)

    async def redirect(self, url: str) -> None:
        self.opened.append(url)

    async def callback(self) -> AuthorizationCodeResult:
        async with httpx2.AsyncClient(timeout=10) as http:
            location = await authorize_headlessly(
                http,
                self.opened[-1],
                username=self.stack.oauth.username,
                password=self.stack.oauth.password,
            )
        answer = {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}
        return AuthorizationCodeResult(
            code=answer["code"], state=answer.get("state"), iss=answer.get("iss")
        )


async def test_python_sdk_provider_signs_in_refreshes_and_calls_tools(stack: Stack) -> None:
    storage, user = MemoryStorage(), HeadlessUser(stack)
    provider = OAuthClientProvider(
        stack.weather.url,
        OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT)],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            client_name="Python SDK interop",
        ),
        storage,
        redirect_handler=user.redirect,
        callback_handler=user.callback,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(stack.weather.url, http_client=http)) as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        first = await client.call_tool("get_alerts", {"state": "CA"})
        await asyncio.sleep(stack.past_expiry)  # the access token has expired
        second = await client.call_tool("get_alerts", {"state": "CA"})

    assert tools == {"get_alerts", "get_forecast"}
    assert not first.is_error, first.content
    assert not second.is_error, second.content
    assert first.content == second.content

    assert len(user.opened) == 1  # one sign-in; the expiry was handled by refresh alone
    query = parse_qs(urlsplit(user.opened[0]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [stack.weather.url]
    assert storage.client is not None
    assert query["client_id"] == [storage.client.client_id]  # registered dynamically

    assert len(storage.saved) == 2  # the code exchange, then one refresh
    issued, refreshed = storage.saved
    assert refreshed.access_token != issued.access_token
    assert refreshed.refresh_token not in (None, issued.refresh_token)  # rotated (OAuth 2.1)

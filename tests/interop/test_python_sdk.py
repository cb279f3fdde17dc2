"""The MCP Python SDK's own OAuthClientProvider (no wrapper of ours) against the real programs.

Discovery (RFC 9728, RFC 8414), dynamic registration (RFC 7591), authorization with PKCE S256
and `resource` (the real login and consent forms, posted headlessly), token use, a refresh
once the short-lived access token expires, and tool calls against weather.py. Also the SDK's
machine-client providers (client credentials with a secret, and private_key_jwt).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from tests.support.flows import Stack
from tests.support.headless import authorize_headlessly
from tests.support.machine_clients import INITIAL_ACCESS_TOKEN
from tests.support.sdk_client import MemoryStorage

pytestmark = pytest.mark.process

REDIRECT = "http://127.0.0.1:9/callback"  # loopback: oauth.py accepts any port (RFC 8252 7.3)


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


async def test_python_sdk_provider_signs_in_refreshes_and_calls_tools(
    stack: Stack, past_expiry: float
) -> None:
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
        await asyncio.sleep(past_expiry)  # the access token has expired
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


# --- clients without a browser (issue 14) ---


async def register(stack: Stack, **metadata: Any) -> dict[str, Any]:
    """A client_credentials client, registered as an administrator would."""
    body = {"grant_types": ["client_credentials"], "client_name": "SDK machine", **metadata}
    headers = {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{stack.oauth.issuer}/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def call_twice(stack: Stack, provider: httpx2.Auth, past_expiry: float) -> None:
    """Call a tool, wait past the token's expiry, call again: both succeed."""
    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(stack.weather.url, http_client=http)) as client,
    ):
        first = await client.call_tool("get_alerts", {"state": "CA"})
        await asyncio.sleep(past_expiry)
        second = await client.call_tool("get_alerts", {"state": "CA"})
    assert not first.is_error, first.content
    assert not second.is_error, second.content


async def test_python_sdk_machine_providers(stack: Stack, past_expiry: float) -> None:
    """The SDK's ClientCredentialsOAuthProvider (client_secret_basic) and PrivateKeyJWTOAuthProvider
    (ES256 by PyJWT, `aud` the issuer as the SDK writes it) with clients registered with the
    initial access token: tokens without a browser, accepted by weather.py, asked for again once
    expired (no refresh token)."""
    secret_client = await register(stack, token_endpoint_auth_method="client_secret_basic")
    key = ECKey.generate_key("P-256")
    key_client = await register(
        stack,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    signed = SignedJWTParameters(
        issuer=key_client["client_id"],
        subject=key_client["client_id"],
        signing_key=key.as_pem(private=True).decode(),
        signing_algorithm="ES256",
        lifetime_seconds=60,
    )
    stores = MemoryStorage(), MemoryStorage()
    providers = (
        ClientCredentialsOAuthProvider(
            stack.weather.url,
            stores[0],
            secret_client["client_id"],
            secret_client["client_secret"],
            issuer=stack.oauth.issuer,
        ),
        PrivateKeyJWTOAuthProvider(
            stack.weather.url,
            stores[1],
            key_client["client_id"],
            signed.create_assertion_provider(),
            issuer=stack.oauth.issuer,
        ),
    )
    await asyncio.gather(*(call_twice(stack, provider, past_expiry) for provider in providers))
    for storage in stores:
        assert len(storage.saved) == 2  # asked again after the expiry
        assert all(tokens.refresh_token is None for tokens in storage.saved)

"""The MCP SDK's OAuthClientProvider completes its whole flow against this server, in process."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import REDIRECT, RESOURCE, Harness, query_of
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME
from tests.support.sdk_client import MemoryStorage, Routing, resource_app


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("none", id="public"),
        pytest.param(None, id="default-basic"),
        pytest.param("client_secret_post", id="post"),
    ],
)
async def test_sdk_client_provider_full_flow(oauth: Harness, method: Any) -> None:
    transport = Routing(
        {
            "127.0.0.1:8003": httpx2.ASGITransport(app=oauth.app),
            "127.0.0.1:8000": httpx2.ASGITransport(app=resource_app(oauth)),
        }
    )
    final: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        async with httpx2.AsyncClient(transport=transport) as browser:
            final["location"] = await authorize_headlessly(
                browser, url, username=TEST_USERNAME, password=TEST_PASSWORD
            )

    async def callback_handler() -> AuthorizationCodeResult:
        params = query_of(final["location"])
        return AuthorizationCodeResult(
            code=params["code"], state=params["state"], iss=params["iss"]
        )

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        RESOURCE,
        OAuthClientMetadata(
            redirect_uris=[AnyUrl(REDIRECT)],
            client_name="SDK client",
            grant_types=["authorization_code", "refresh_token"],
            token_endpoint_auth_method=method,
        ),
        storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    async with httpx2.AsyncClient(transport=transport, auth=provider) as client:
        response = await client.post(RESOURCE, json={})
    assert response.status_code == 200, response.text
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    info: dict[str, Any] = await oauth.introspect(storage.tokens.access_token)
    assert info["aud"] == RESOURCE
    assert info["scope"] == "weather:read"

"""The MCP SDK's OAuthClientProvider completes its whole flow against this server, in process."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from tests.support.oauth_harness import RESOURCE, Harness
from tests.support.sdk_client import sdk_sign_in


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("none", id="public"),
        pytest.param(None, id="default-basic"),
        pytest.param("client_secret_post", id="post"),
    ],
)
async def test_sdk_client_provider_full_flow(oauth: Harness, method: Any) -> None:
    sdk = sdk_sign_in(oauth, method)
    storage = sdk.storage
    async with httpx2.AsyncClient(transport=sdk.transport, auth=sdk.provider) as client:
        response = await client.post(RESOURCE, json={})
    assert response.status_code == 200, response.text
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    info: dict[str, Any] = await oauth.introspect(storage.tokens.access_token)
    assert info["aud"] == RESOURCE
    assert info["scope"] == "weather:read"

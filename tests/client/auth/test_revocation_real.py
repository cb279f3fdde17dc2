"""RFC 7009 revocation against our real authorization server: confidential clients sign out.

Our oauth and weather apps run in process. The authorization server insists on each client's
registered authentication method at /revoke, so these prove that a logout really ends the grant
(introspection says inactive), for client_secret_basic and client_secret_post alike.
"""

from __future__ import annotations

import json
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
from tests.support.client_fakes import RS_URL
from tests.support.headless import authorize_headlessly
from tests.support.in_process_stack import (
    ISSUER,
    InProcessStack,
    in_process_stack,
)
from tests.support.oauth_harness import pkce, query_of
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME


async def confidential_client(stack: InProcessStack, tmp_path: Path) -> ClientSettings:
    """Register a client_secret_basic client; the client's settings with its credentials."""
    client = await stack.register("client_secret_basic")
    return ClientSettings(
        state_dir=tmp_path / "client",
        server_url=RS_URL,
        client_id=client["client_id"],
        client_secret=client["client_secret"],
        client_issuer=ISSUER,
    )


async def sign_in_as(stack: InProcessStack, settings: ClientSettings) -> OAuthToken:
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
    async with in_process_stack(tmp_path) as stack:
        settings = await confidential_client(stack, tmp_path)
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
    async with in_process_stack(tmp_path) as stack:
        settings = await confidential_client(stack, tmp_path)
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
    async with in_process_stack(tmp_path) as stack:
        client = await stack.register(method)
        tokens = await tokens_for(stack, client, method)
        async with httpx2.AsyncClient(transport=stack.router) as http:
            found = await http.get(f"{ISSUER}/.well-known/oauth-authorization-server")
            metadata = OAuthMetadata.model_validate(found.json())
            info = OAuthClientInformationFull.model_validate(client)
            assert await revoke_tokens(http, metadata, info, tokens, [].append)
        assert not await stack.active(tokens.access_token)
        assert not await stack.active(str(tokens.refresh_token))


async def tokens_for(stack: InProcessStack, client: dict[str, Any], method: str) -> OAuthToken:
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

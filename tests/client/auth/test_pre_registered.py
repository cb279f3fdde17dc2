"""Pre-registered client credentials come before CIMD and dynamic registration."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import Response

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.provider import pre_registered_client
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import _revoke_and_delete, connect, preflight
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    FakeResource,
    Router,
    expire_stored_tokens,
)
from tests.support.scripted_browser import ScriptedBrowser, sign_in, signed_in_client

OTHER_AS = "http://127.0.0.1:9100"


@dataclass
class RecordingAuthServer(FakeAuthServer):
    """The fake authorization server, remembering each token request's Authorization header."""

    token_auth: list[str | None] = field(default_factory=list)

    async def _token(self, request: Request) -> Response:
        self.token_auth.append(request.headers.get("authorization"))
        return await super()._token(request)


def basic(client_id: str, secret: str) -> str:
    """An RFC 6749 2.3.1 Basic header value."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_confidential_client_uses_basic_and_never_registers(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    server = RecordingAuthServer(cimd_supported=True)
    settings = dataclasses.replace(
        settings,
        client_id="pre-registered",
        client_secret="s3cret",
        client_issuer=AS_ORIGIN,
        client_metadata_url="https://client.example/cimd",
    )
    await sign_in(settings, FakeResource(server), browser, lines)
    assert server.registrations == {}
    assert server.authorize_params[0]["client_id"] == "pre-registered"
    assert server.token_auth == [basic("pre-registered", "s3cret")]

    # Kept with its tokens, so signing out revokes as this client (RFC 7009 2.1).
    storage = FileTokenStorage(settings.state_dir, RS_URL)
    [(issuer, _, client)] = storage.all_tokens()
    assert client is not None
    assert (issuer, client.client_id, client.issuer) == (AS_ORIGIN, "pre-registered", AS_ORIGIN)
    assert storage.registration(AS_ORIGIN) is None  # not a registration of this client's own
    async with httpx2.AsyncClient(transport=Router({AS_ORIGIN: server.app()})) as http:
        assert await _revoke_and_delete(storage, http, lines.append)
    assert [hint for hint, _ in server.revoked] == ["refresh_token", "access_token"]


async def test_public_client_sends_no_secret(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    server = RecordingAuthServer()
    settings = dataclasses.replace(settings, client_id="public-app", client_issuer=AS_ORIGIN + "/")
    await sign_in(settings, FakeResource(server), browser, lines)
    assert server.registrations == {}
    assert server.authorize_params[0]["client_id"] == "public-app"
    assert server.token_auth == [None]


def test_no_client_id_means_no_pre_registration(settings: ClientSettings) -> None:
    assert pre_registered_client(settings, "http://127.0.0.1:1/callback") is None


def test_secret_stays_out_of_the_settings_repr(settings: ClientSettings) -> None:
    settings = dataclasses.replace(
        settings, client_id="app", client_secret="s3cret", client_issuer=AS_ORIGIN
    )
    assert "s3cret" not in repr(settings)
    client = pre_registered_client(settings, "http://127.0.0.1:1/callback")
    assert client is not None
    assert client.token_endpoint_auth_method == "client_secret_basic"


def test_client_id_needs_its_issuer(settings: ClientSettings) -> None:
    settings = dataclasses.replace(settings, client_id="app", client_secret="s3cret")
    with pytest.raises(ClientConnectError, match="--client-id needs --client-issuer") as caught:
        pre_registered_client(settings, "http://127.0.0.1:1/callback")
    assert caught.value.error == "invalid_client"


async def test_connect_without_the_issuer_sends_nothing(
    settings: ClientSettings, browser: ScriptedBrowser
) -> None:
    settings = dataclasses.replace(settings, client_id="app", client_secret="s3cret")
    router = Router({})
    with pytest.raises(ClientConnectError, match="--client-issuer"):
        async with connect(settings, write=[].append, http_transport=router, opener=browser.open):
            pass  # pragma: no cover - connect refuses first
    assert router.requests == []


async def test_secret_never_reaches_another_authorization_server(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    # The MCP server's PRM names another AS: the SDK would send issuer-less credentials there.
    other = RecordingAuthServer(issuer=OTHER_AS, origin=OTHER_AS)
    settings = dataclasses.replace(
        settings, client_id="pre-registered", client_secret="s3cret", client_issuer=AS_ORIGIN
    )
    resource = FakeResource(other)
    async with signed_in_client(settings, resource, browser, lines, {OTHER_AS: other}) as (
        http,
        provider,
    ):
        with pytest.raises(ClientConnectError) as caught:
            await preflight(http, provider)
    assert caught.value.error == "invalid_client"
    assert str(caught.value) == (
        f"The server at {RS_URL} uses the authorization server {OTHER_AS}, but --client-id "
        f"pre-registered is registered with {AS_ORIGIN}; its credentials were not sent."
    )
    assert browser.router is not None
    to_other = [line for line in browser.router.requests if OTHER_AS in line]
    assert to_other
    assert all(line.startswith("GET ") for line in to_other)  # discovery only
    assert other.token_auth == []
    assert other.registrations == {}
    assert other.authorize_params == []
    assert browser.opened == []


async def test_a_confidential_client_refreshes_as_itself(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """The refresh, under the state folder's lock, stays with the configured client."""
    server = RecordingAuthServer()
    settings = dataclasses.replace(
        settings, client_id="pre-registered", client_secret="s3cret", client_issuer=AS_ORIGIN
    )
    resource = FakeResource(server)
    await sign_in(settings, resource, browser, lines)
    expire_stored_tokens(settings.state_dir)
    await sign_in(settings, resource, browser, lines)
    assert server.log[-1] == "POST /token refresh_token"
    assert server.token_auth == [basic("pre-registered", "s3cret")] * 2
    assert len(browser.opened) == 1

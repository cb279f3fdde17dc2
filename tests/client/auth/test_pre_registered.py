"""Pre-registered client credentials come before CIMD and dynamic registration."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field

import httpx2
from starlette.requests import Request
from starlette.responses import Response

from secure_mcp.client.auth.provider import pre_registered_client
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import _revoke_and_delete
from secure_mcp.client.settings import ClientSettings
from tests.client.auth.fakes import AS_ORIGIN, RS_URL, FakeAuthServer, FakeResource, Router
from tests.client.auth.harness import ScriptedBrowser
from tests.client.auth.test_provider import sign_in


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
        client_metadata_url="https://client.example/cimd",
    )
    await sign_in(settings, FakeResource(server), browser, lines)
    assert server.registrations == {}
    assert server.authorize_params[0]["client_id"] == "pre-registered"
    assert server.token_auth == [basic("pre-registered", "s3cret")]

    # Kept with its issuer, so signing out revokes as this client (RFC 7009 2.1).
    storage = FileTokenStorage(settings.state_dir, RS_URL)
    _, client = storage.server(AS_ORIGIN)
    assert client is not None
    assert (client.client_id, client.issuer) == ("pre-registered", AS_ORIGIN)
    async with httpx2.AsyncClient(transport=Router({AS_ORIGIN: server.app()})) as http:
        assert await _revoke_and_delete(storage, http, lines.append)
    assert [hint for hint, _ in server.revoked] == ["refresh_token", "access_token"]


async def test_public_client_sends_no_secret(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    server = RecordingAuthServer()
    settings = dataclasses.replace(settings, client_id="public-app")
    await sign_in(settings, FakeResource(server), browser, lines)
    assert server.registrations == {}
    assert server.authorize_params[0]["client_id"] == "public-app"
    assert server.token_auth == [None]


def test_no_client_id_means_no_pre_registration(settings: ClientSettings) -> None:
    assert pre_registered_client(settings, "http://127.0.0.1:1/callback") is None


def test_secret_stays_out_of_the_settings_repr(settings: ClientSettings) -> None:
    settings = dataclasses.replace(settings, client_id="app", client_secret="s3cret")
    assert "s3cret" not in repr(settings)
    client = pre_registered_client(settings, "http://127.0.0.1:1/callback")
    assert client is not None
    assert client.token_endpoint_auth_method == "client_secret_basic"

"""For the MCP SDK's OAuth client: its TokenStorage in memory, in-process routing, a resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx2
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import REDIRECT, RESOURCE, Harness, query_of
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME

PRM_URL = "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp"


class Routing(httpx2.AsyncBaseTransport):
    """Send each request to the ASGI app serving its host:port."""

    def __init__(self, apps: dict[str, httpx2.AsyncBaseTransport]) -> None:
        self.apps = apps

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return await self.apps[request.url.netloc.decode()].handle_async_request(request)


@dataclass
class MemoryStorage:
    """The SDK's TokenStorage protocol in memory, keeping every token set it was given."""

    saved: list[OAuthToken] = field(default_factory=list)
    client: OAuthClientInformationFull | None = None

    @property
    def tokens(self) -> OAuthToken | None:
        """The token set saved last."""
        return self.saved[-1] if self.saved else None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.saved.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def resource_app(oauth: Harness) -> Starlette:
    """A stand-in resource server: RFC 9728 metadata, and /mcp checked by introspection."""

    async def prm(request: Request) -> Response:
        return JSONResponse(
            {
                "resource": RESOURCE,
                "authorization_servers": [oauth.settings.issuer],
                "scopes_supported": ["weather:read"],
            }
        )

    async def mcp(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token and (await oauth.introspect(token))["active"]:
            return JSONResponse({"ok": True})
        challenge = f'Bearer resource_metadata="{PRM_URL}", scope="weather:read"'
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})

    return Starlette(
        routes=[
            Route("/.well-known/oauth-protected-resource/mcp", prm),
            Route("/mcp", mcp, methods=["POST"]),
        ]
    )


@dataclass
class SdkSignIn:
    """The SDK's OAuthClientProvider signing in headlessly to the in-process `oauth` app."""

    provider: OAuthClientProvider
    transport: Routing
    storage: MemoryStorage
    opened: list[str]


def sdk_sign_in(
    oauth: Harness, method: Any = "none", client_metadata_url: str | None = None
) -> SdkSignIn:
    """A provider (public client by default) whose browser signs in and allows on the pages."""
    transport = Routing(
        {
            "127.0.0.1:8003": httpx2.ASGITransport(app=oauth.app),
            "127.0.0.1:8000": httpx2.ASGITransport(app=resource_app(oauth)),
        }
    )
    opened: list[str] = []
    final: dict[str, str] = {}

    async def redirect_handler(url: str) -> None:
        opened.append(url)
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
        client_metadata_url=client_metadata_url,
    )
    return SdkSignIn(provider, transport, storage, opened)

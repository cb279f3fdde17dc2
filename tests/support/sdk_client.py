"""For the MCP SDK's OAuth client: its TokenStorage in memory, in-process routing, a resource."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx2
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.oauth_harness import RESOURCE, Harness

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

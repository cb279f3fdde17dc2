"""CORS for the endpoints browser-based MCP clients call: metadata, /register, /token, /revoke.

Any origin, never credentials (no `Access-Control-Allow-Credentials`: a cross-origin page gets no
cookie-bearing answer), only the methods and request headers each endpoint needs, as the MCP
SDKs' authorization servers do. `/authorize`, the pages and `/introspect` get no CORS at all: a
browser reaches the first two by navigation, and the third is for resource servers only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]
MCP_PROTOCOL_VERSION = "MCP-Protocol-Version"  # sent by the SDKs' discovery requests
METADATA_HEADERS = (MCP_PROTOCOL_VERSION,)
REGISTER_HEADERS = ("Content-Type", MCP_PROTOCOL_VERSION)
CLIENT_AUTH_HEADERS = ("Authorization", "Content-Type", MCP_PROTOCOL_VERSION)
TOKEN_HEADERS = (*CLIENT_AUTH_HEADERS, "DPoP")  # RFC 9449 4.1: the proof
# the Basic challenge of a 401 invalid_client (RFC 6749 5.2); a DPoP nonce (RFC 9449 8.1)
EXPOSED = ("WWW-Authenticate", "DPoP-Nonce")


def allowed_methods(methods: Sequence[str]) -> str:
    """The `Allow` value of a route with `methods`: HEAD with GET, as Starlette routes answer."""
    names = {m.upper() for m in methods}
    if "GET" in names:
        names.add("HEAD")
    return ", ".join(sorted(names))


class _PlainOptions:
    """An OPTIONS request that is not a preflight: 204 with `Allow` (RFC 9110 9.3.7)."""

    def __init__(self, app: ASGIApp, allow: str) -> None:
        self.app = app
        self.allow = allow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer OPTIONS here; pass every other method to the endpoint."""
        if scope["method"] == "OPTIONS":
            await Response(status_code=204, headers={"Allow": self.allow})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def cors_route(
    path: str, handler: Handler, methods: Sequence[str], headers: Sequence[str]
) -> Route:
    """A route open to any origin for `methods` (plus OPTIONS) and the request `headers`."""
    with_options = [*methods, "OPTIONS"]
    endpoint = CORSMiddleware(
        _PlainOptions(request_response(handler), allowed_methods(with_options)),
        allow_origins=["*"],
        allow_methods=with_options,
        allow_headers=headers,
        allow_credentials=False,
        expose_headers=EXPOSED,
    )
    return Route(path, endpoint, methods=with_options)

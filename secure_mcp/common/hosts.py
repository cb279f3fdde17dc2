"""Answer only for our own host names: a DNS-rebinding page gets 421, never our pages or tokens.

A web page on evil.example can make its own name resolve to 127.0.0.1 and then talk to a
loopback server from the browser with `Host: evil.example:8003`, as if it were same-origin.
Every request whose `Host` is not one of the server's own names (its public URL's host, the
bound interface, or a loopback name when bound to loopback) is refused with 421 Misdirected
Request (RFC 9110 15.5.20), before anything else runs: before authentication, so a rebound page
learns nothing, not even a challenge. Where `origins` is given, a browser request from another
origin is refused with 403 on every path outside `open_paths` (MCP transport security).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ORIGIN_REFUSED = "Invalid Origin header"


class HostCheckMiddleware:
    """Pure ASGI middleware: 421 for any `Host` outside `allowed` (lowercase `host:port`)."""

    def __init__(
        self,
        app: ASGIApp,
        allowed: frozenset[str],
        url: str,
        origins: frozenset[str] | None = None,
        open_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.allowed = allowed
        self.origins = origins
        self.open_paths = frozenset(open_paths)
        self.message = (
            "Misdirected request: this server does not answer for the host name in the Host "
            f"header. Use {url}\n"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests for our names (and origins) through; refuse the others."""
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if headers.get("host", "").lower() not in self.allowed:
                await PlainTextResponse(self.message, 421)(scope, receive, send)
                return
            origin = headers.get("origin")
            if (
                self.origins is not None
                and origin is not None
                and origin.lower() not in self.origins
                and scope["path"] not in self.open_paths
            ):
                await PlainTextResponse(ORIGIN_REFUSED, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""Answer only for our own host names: a DNS-rebinding page gets 421, never our pages or tokens.

A web page on evil.example can make its own name resolve to 127.0.0.1 and then talk to this
server from the browser with `Host: evil.example:8003`, as if it were same-origin. Every
request whose `Host` is not the issuer's host, the bound interface, or (when bound to loopback)
a loopback name is refused with 421 Misdirected Request (RFC 9110 15.5.20), as weather.py does.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class HostCheckMiddleware:
    """Pure ASGI middleware: 421 for any `Host` outside `allowed` (lowercase `host:port`)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str], issuer: str) -> None:
        self.app = app
        self.allowed = allowed
        self.message = (
            "Misdirected request: this server does not answer for the host name in the Host "
            f"header. Use {issuer}\n"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass requests for our names through; answer the others 421."""
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "").lower()
            if host not in self.allowed:
                await PlainTextResponse(self.message, 421)(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""A transport that turns network failures into a recorded error plus a 503 answer."""

from __future__ import annotations

from collections.abc import Callable

import httpx2

from secure_mcp.client.auth.errors import ClientConnectError


def unreachable(exc: httpx2.TransportError, request: httpx2.Request) -> ClientConnectError:
    """Name the address that could not be reached (the MCP server or its authorization server)."""
    url = request.url.copy_with(query=None)
    if isinstance(exc, httpx2.TimeoutException):
        return ClientConnectError(f"No answer from {url} ({type(exc).__name__}).", "timeout")
    return ClientConnectError(
        f"Cannot reach {url} ({type(exc).__name__}); is the server running?",
        "server_unreachable",
    )


class ReportingTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport: a network failure is reported, and the caller sees HTTP 503.

    Neither the OAuth flow (a generator httpx2 closes on any exception) nor the SDK's MCP
    transport (whose task group dies of one) survives an exception from a request, so the
    failure goes to `report` and the request answers like an unavailable server.
    """

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, report: Callable[[ClientConnectError], None]
    ) -> None:
        self._inner = inner
        self._report = report

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request`; on a network failure, report it and answer 503."""
        try:
            return await self._inner.handle_async_request(request)
        except httpx2.TransportError as exc:
            self._report(unreachable(exc, request))
            return httpx2.Response(503, request=request, text="unreachable")

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()

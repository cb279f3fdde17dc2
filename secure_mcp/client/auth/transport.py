"""The client's HTTP transport: failures reported, not raised; answers bounded in size and time.

A server the client talks to must not be able to make it hold more than a set number of bytes
or wait longer than a set time for one answer, however it trickles them; and no failure may
reach the OAuth flow or the SDK's MCP transport as an exception (neither survives one).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import anyio
import httpx2

from secure_mcp.client.auth.errors import ClientConnectError, Report

MIB = 1024 * 1024


def _where(request: httpx2.Request) -> httpx2.URL:
    return request.url.copy_with(query=None)


def unreachable(exc: httpx2.TransportError, request: httpx2.Request) -> ClientConnectError:
    """Name the address that could not be reached (the MCP server or its authorization server)."""
    url = _where(request)
    if isinstance(exc, httpx2.TimeoutException):
        return ClientConnectError(f"No answer from {url} ({type(exc).__name__}).", "timeout")
    return ClientConnectError(
        f"Cannot reach {url} ({type(exc).__name__}); is the server running?",
        "server_unreachable",
    )


def too_large(request: httpx2.Request, limit: int) -> ClientConnectError:
    """The answer from `request`'s server was over `limit` bytes; the rest was not read."""
    size = f"{limit // MIB} MiB" if limit >= MIB else f"{limit // 1024} KiB"
    size = size if limit >= 1024 else f"{limit} bytes"
    return ClientConnectError(
        f"The answer from {_where(request)} is larger than the client's limit of {size}; "
        "it was not read.",
        "response_too_large",
    )


def too_slow(request: httpx2.Request, seconds: float) -> ClientConnectError:
    """The answer from `request`'s server did not arrive in full within `seconds`."""
    return ClientConnectError(
        f"No complete answer from {_where(request)} within {seconds:g} seconds; "
        "the client stopped waiting.",
        "timeout",
    )


@dataclass(frozen=True)
class Bounds:
    """The most one answer may cost: bytes and seconds, for the MCP endpoint and for the rest."""

    mcp_url: str | None = None
    mcp_bytes: int = 16 * MIB
    mcp_seconds: float = 120.0
    other_bytes: int = 256 * 1024
    other_seconds: float = 30.0

    def of(self, request: httpx2.Request) -> tuple[int, float] | None:
        """(bytes, seconds) for `request`, or None for the MCP listen stream (open by design)."""
        if str(_where(request)) != self.mcp_url:
            return self.other_bytes, self.other_seconds
        listening = request.method == "GET" and "text/event-stream" in request.headers.get(
            "accept", ""
        )
        return None if listening else (self.mcp_bytes, self.mcp_seconds)


@dataclass(eq=False)
class BoundedStream(httpx2.AsyncByteStream):
    """A response body that ends (and reports why) once it is over its size or its deadline."""

    inner: httpx2.AsyncByteStream
    request: httpx2.Request
    report: Report
    limit: int
    deadline: float  # time.monotonic() when the body must have arrived
    seconds: float  # the allowance the deadline came from, for the message

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's chunks, cut at the limit; the connection is dropped when it is cut."""
        chunks = aiter(self.inner)
        received = 0
        while True:
            failure = None
            with anyio.move_on_after(max(self.deadline - time.monotonic(), 0.0)) as scope:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except httpx2.TransportError as exc:  # cut off mid-body
                    failure = unreachable(exc, self.request)
            if scope.cancelled_caught:
                failure = too_slow(self.request, self.seconds)
            elif failure is None and received + len(chunk) > self.limit:
                yield chunk[: self.limit - received]
                failure = too_large(self.request, self.limit)
            if failure is not None:
                self.report(failure)
                await self.aclose()
                return
            received += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        """Close the underlying body (and with it the connection, if it was not read to its end)."""
        await self.inner.aclose()


class ReportingTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport: failures are reported, the caller sees HTTP 503 or a cut body.

    Neither the OAuth flow (a generator httpx2 closes on any exception) nor the SDK's MCP
    transport (whose task group dies of one) survives an exception from a request, so a network
    failure, an answer over its size or a server too slow to finish within the deadline goes to
    `report`: the request answers like an unavailable server, or its body simply ends.
    """

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, report: Report, bounds: Bounds | None = None
    ) -> None:
        self._inner = inner
        self._report = report
        self._bounds = bounds or Bounds()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request` within its bounds; on a failure, report it and answer 503."""
        bounds = self._bounds.of(request)
        limit, seconds = bounds if bounds is not None else (0, math.inf)
        deadline = time.monotonic() + seconds
        try:
            with anyio.fail_after(seconds if bounds is not None else None):
                response = await self._inner.handle_async_request(request)
        except httpx2.TransportError as exc:
            return self._unavailable(request, unreachable(exc, request))
        except TimeoutError:
            return self._unavailable(request, too_slow(request, seconds))
        if bounds is None:
            return response
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before a byte is read
            await response.aclose()
            return self._unavailable(request, too_large(request, limit))
        body = cast(httpx2.AsyncByteStream, response.stream)  # an async transport's body
        response.stream = BoundedStream(body, request, self._report, limit, deadline, seconds)
        return response

    def _unavailable(self, request: httpx2.Request, failure: ClientConnectError) -> httpx2.Response:
        self._report(failure)
        return httpx2.Response(503, request=request, text=failure.error)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def network_transport(keepalive: float) -> httpx2.AsyncHTTPTransport:
    """The network transport of every client HTTP connection.

    Idle connections expire after `keepalive` seconds (httpx2's default is 5 s, exactly when
    uvicorn and Node close theirs), so a request never goes out on a connection the server is
    closing at that moment (a ReadError).
    """
    return httpx2.AsyncHTTPTransport(limits=httpx2.Limits(keepalive_expiry=keepalive))

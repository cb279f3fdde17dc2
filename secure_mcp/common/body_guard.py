"""A deadline for the request body, read in full before the application sees it (pure ASGI).

The application is called only once the whole body is here (up to `limit` bytes): a body that
does not arrive within `timeout` seconds of the head is answered 408 and the connection closed;
a client that hangs up mid-body is dropped with at most one aggregated log line, and the
application never runs (so it never logs a "client disconnected" traceback). A body longer than
`limit` is handed over as far as it was read, marked unfinished, for the application's own
"too large" answer; set `limit` to the application's own maximum.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secure_mcp.common.quiet_log import SummaryLog
from secure_mcp.common.sources import scope_source

logger = logging.getLogger("secure_mcp.connections")

TIMEOUT_BODY = b"The request body took too long.\r\n"


class BodyGuardMiddleware:
    """Read each HTTP request body in full, within a deadline, before calling the app."""

    def __init__(
        self, app: ASGIApp, *, timeout: float, limit: int, log: SummaryLog | None = None
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.limit = limit
        self.log = log or SummaryLog(logger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.timeout
        try:
            async with asyncio.timeout_at(deadline):
                first = await self._read(receive)
        except TimeoutError:
            self.log.event(
                "body-timeout",
                "slow client: request body from %s incomplete after %g s; answered 408",
                scope_source(scope),
                self.timeout,
            )
            await _request_timeout(send)
            return
        if first is None:
            self.log.event(
                "hang-up",
                "client %s hung up before its request body was complete",
                scope_source(scope),
            )
            return
        await self.app(scope, _Replay(first, receive, deadline), send)

    async def _read(self, receive: Receive) -> Message | None:
        """The body so far as one message (None if the client hung up): all, or past `limit`."""
        chunks: list[bytes] = []
        size, more = 0, True
        while more and size <= self.limit:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk: bytes = message.get("body", b"")
            chunks.append(chunk)
            size += len(chunk)
            more = bool(message.get("more_body", False))
        return {"type": "http.request", "body": b"".join(chunks), "more_body": more}


class _Replay:
    """The app's `receive`: the buffered body first, then the connection's own messages."""

    def __init__(self, first: Message, receive: Receive, deadline: float) -> None:
        self._first: Message | None = first
        self._unfinished = bool(first["more_body"])
        self._receive = receive
        self._deadline = deadline

    async def __call__(self) -> Message:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if not self._unfinished:
            return await self._receive()  # e.g. waiting for the disconnect of a stream
        try:  # the rest of an over-long body: still within the deadline
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            return {"type": "http.disconnect"}
        self._unfinished = message["type"] == "http.request" and bool(message.get("more_body"))
        return message


async def _request_timeout(send: Send) -> None:
    """408 and close (RFC 9110 15.5.9: the server closes the connection)."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(TIMEOUT_BODY)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 408, "headers": headers})
    await send({"type": "http.response.body", "body": TIMEOUT_BODY})

"""uvicorn's httptools protocol with the guards it lacks: a deadline and a size cap for the request
head, caps on open connections (overall and per source), and no unread body holding a connection.

uvicorn has a keep-alive timeout but no deadline before the first request, nor for a head that
trickles in a byte at a time (slowloris), and its `limit_concurrency` counts those idle
connections too, so it would turn everyone away. Here, when a cap is reached, the oldest
connection of the crowding source whose request has not fully arrived (an idle keep-alive, a
head or a body still trickling in) is closed to make room; only when every connection is busy
serving a complete request is the newcomer refused (503). A slow client therefore never keeps a
well-behaved one out, and whatever it holds is released by the deadlines.

httptools (llhttp, in C) parses several times faster than h11 but keeps no request state we can
ask, checks no `Host` header and has no limit on a head's size: the protocol follows each request
from the parser's callbacks, and refuses what h11 refused (RFC 9112 3.2 and 6.1, heads over
16 KiB) with uvicorn's own 400 answer.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from secure_mcp.common.connection_limits import ConnectionLimits
from secure_mcp.common.quiet_log import SummaryLog, throttle_warnings
from secure_mcp.common.sources import UNKNOWN, source_of

logger = logging.getLogger("secure_mcp.connections")

REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 34\r\nconnection: close\r\n\r\nThe request head took too long.\r\n"
)
TOO_MANY_CONNECTIONS = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 22\r\nretry-after: 1\r\nconnection: close\r\n\r\nToo many connections\r\n"
)
INVALID = "Invalid HTTP request received."  # uvicorn's own 400 answer (and h11's before)
MAX_HEAD = 16 * 1024  # bytes of a request head: h11's limit, which uvicorn used before
HEAD_END = b"\r\n\r\n"
# Event loop for `uvicorn.run`: libuv's where installed (not on Windows), else asyncio's.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


class InvalidRequest(Exception):
    """Raised in a parser callback: uvicorn then answers 400 and closes."""


class ConnectionRegistry:
    """Open connections by source, oldest first; picks the one that makes room for a newcomer."""

    def __init__(self, limits: ConnectionLimits, log: SummaryLog) -> None:
        self.limits = limits
        self.log = log
        self._by_source: dict[str, dict[GuardedHttpProtocol, None]] = {}
        self.count = 0

    def admit(self, connection: GuardedHttpProtocol) -> bool:
        """Register `connection`, closing an idle one at a cap; False when none can go."""
        mine = self._by_source.get(connection.source, {})
        if len(mine) >= self.limits.max_connections_per_source and not self._evict(mine):
            return False
        if self.count >= self.limits.max_connections and not self._evict_crowding():
            return False
        self._by_source.setdefault(connection.source, {})[connection] = None
        self.count += 1
        return True

    def remove(self, connection: GuardedHttpProtocol) -> None:
        """Forget `connection` (idempotent)."""
        mine = self._by_source.get(connection.source)
        if mine is None or connection not in mine:
            return
        del mine[connection]
        self.count -= 1
        if not mine:
            del self._by_source[connection.source]

    def _evict(self, connections: dict[GuardedHttpProtocol, None]) -> bool:
        """Close the oldest of `connections` whose request has not fully arrived."""
        victim = next((c for c in connections if c.evictable()), None)
        if victim is None:
            return False
        self.remove(victim)
        victim.transport.close()
        self.log.event(
            "evicted", "connection limit: closed an idle or slow connection from %s", victim.source
        )
        return True

    def _evict_crowding(self) -> bool:
        """Make room overall, taking from the source with the most connections first."""
        crowded = sorted(self._by_source.values(), key=len, reverse=True)
        return any(self._evict(connections) for connections in crowded)


class GuardedHttpProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` plus the head deadline and cap, the connection caps and the
    unread-body deadline; refuses what llhttp lets through but h11 refused."""

    registry: ClassVar[ConnectionRegistry]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        throttle_warnings(self.logger)  # "Invalid HTTP request received." and the like
        self.source = UNKNOWN
        self._head_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # the next request's head has not fully arrived
        self._head_bytes = 0  # bytes of that head received so far (counted per read)
        self._heads_done = 0  # heads complete so far: tells what a read contained
        self._next_begun = False  # a request began since the last one ended
        self._refusal: str | None = None  # a 400 held back until earlier answers are out

    @property
    def limits(self) -> ConnectionLimits:
        return self.registry.limits

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.source = source_of(self.client[0] if self.client else None)
        if not self.registry.admit(self):
            transport.write(TOO_MANY_CONNECTIONS)
            transport.close()
            self.registry.log.event(
                "refused", "connection limit: refused %s, every connection is busy", self.source
            )
            return
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.remove(self)
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return  # refused, answered once the earlier answers are out: nothing more is kept
        open_throughout, heads_done = self._awaiting_head, self._heads_done
        super().data_received(data)
        if self.transport.is_closing():
            return
        if heads_done != self._heads_done or not self._awaiting_head:
            self._cancel_head_timer()  # a head is in: the next one's deadline starts with it
        if not self._awaiting_head:
            return
        if open_throughout and heads_done == self._heads_done:
            self._head_bytes += len(data)  # all of it belongs to the head still arriving
        elif self._next_begun:
            # A request ended in this read and the next began: its bytes follow the last
            # head's end (or the whole read, if a body came before: counted high, never low).
            end = data.rfind(HEAD_END)
            self._head_bytes = len(data) - (end + len(HEAD_END) if end >= 0 else 0)
        if self._head_bytes > MAX_HEAD:
            self.logger.warning(INVALID)
            self.send_400_response(INVALID)
        elif self._head_bytes and not self._answering():
            self._start_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        # RFC 9110 5.5: whitespace around a value is not part of it (llhttp keeps the trailing)
        super().on_header(name, value.rstrip(b" \t"))

    def on_message_begin(self) -> None:
        self._next_begun = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._check_head()
        self._awaiting_head, self._head_bytes = False, 0
        self._heads_done += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_head, self._next_begun = True, False
        if self._drain_timer is not None:  # the unread body is all here after all
            self._drain_timer.cancel()
            self._drain_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._answering():
            return
        if self._refusal is not None:
            HttpToolsProtocol.send_400_response(self, self._refusal)
        elif not self._awaiting_head:  # a head is complete, its body not yet
            # Answered before the body was read (a refusal): the rest may come, but not forever.
            self._drain_timer = self.loop.call_later(self.limits.body_timeout, self._drain_expired)
        elif self._head_bytes:  # the next request's head began while this one was answered
            self._start_head_timer()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's 400 and close, once the answers to earlier (pipelined) requests are out."""
        if self._answering():
            self._refusal = msg  # what comes meanwhile is read and dropped (data_received)
            return
        super().send_400_response(msg)

    def evictable(self) -> bool:
        """True while the request has not fully arrived and no response is under way."""
        cycle = self.cycle
        if self.pipeline:
            return False  # a complete request is waiting for its turn
        return (
            cycle is None
            or cycle.response_complete
            or (cycle.more_body and not cycle.response_started)
        )

    def _answering(self) -> bool:
        """True while an answer is due before anything more can be written: a response under
        way, or an earlier request that has fully arrived and is not yet answered."""
        cycle = self.cycle
        return bool(self.pipeline) or (
            cycle is not None
            and not cycle.response_complete
            and (cycle.response_started or self._awaiting_head)
        )

    def _check_head(self) -> None:
        """Refuse, as h11 did, what llhttp accepts: raised here, answered 400 by uvicorn."""
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):  # HTTP/0.9, or a text "HTTP/2.0" request line
            raise InvalidRequest(version)
        names = [name for name, _ in self.headers]
        if names.count(b"host") > 1 or (version == "1.1" and b"host" not in names):
            raise InvalidRequest("Host")  # RFC 9112 3.2: exactly one Host, 400 otherwise
        codings = [value for name, value in self.headers if name == b"transfer-encoding"]
        if codings and (len(codings) > 1 or codings[0].strip().lower() != b"chunked"):
            # RFC 9112 6.1: no coding we could decode (llhttp would pass "gzip, chunked" on)
            raise InvalidRequest("Transfer-Encoding")
        # "GET /path HTTP/1.1\r\n", "Name: value\r\n" each, "\r\n": what came in
        line = len(self.parser.get_method()) + len(self.url) + len(" HTTP/1.1\r\n\r\n") + 1
        size = line + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if max(size, self._head_bytes) > MAX_HEAD:
            raise InvalidRequest("head too large")

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        """Cut a connection whose request head is still incomplete: 408 if one was started."""
        self._head_timer = None
        if self.transport.is_closing():  # (cancelled once the head is in)
            return
        if self._head_bytes:
            self.transport.write(REQUEST_TIMEOUT)
            self.registry.log.event(
                "head-timeout",
                "slow client: request head from %s incomplete after %g s; answered 408",
                self.source,
                self.limits.header_timeout,
            )
        self.transport.close()

    def _drain_expired(self) -> None:
        """Cut a connection whose unread request body is still trickling in after the answer."""
        self._drain_timer = None  # (cancelled as soon as the body is complete)
        self.transport.close()
        self.registry.log.event(
            "drain-timeout",
            "slow client: body from %s still arriving %g s after the answer; closed",
            self.source,
            self.limits.body_timeout,
        )

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._drain_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._drain_timer = None


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """A protocol class for one server, with its own registry of connections."""

    class Guarded(GuardedHttpProtocol):
        registry = ConnectionRegistry(limits, SummaryLog(logger))

    return Guarded


_WORKER_PROTOCOLS: dict[ConnectionLimits, type[GuardedHttpProtocol]] = {}


def guarded_connection(limits: ConnectionLimits, **kwargs: Any) -> GuardedHttpProtocol:
    """A guarded connection; one class (so one registry) per process and limits.

    The picklable form (`functools.partial(guarded_connection, limits)`) that uvicorn hands to
    worker processes: each worker then counts and caps its own connections.
    """
    protocol = _WORKER_PROTOCOLS.get(limits)
    if protocol is None:
        protocol = _WORKER_PROTOCOLS[limits] = guarded_protocol(limits)
    return protocol(**kwargs)


def uvicorn_options(limits: ConnectionLimits, *, workers: bool = False) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` that put both servers behind these guards.

    `workers`: the protocol in a form uvicorn can send to worker processes (caps per worker).
    """
    protocol = functools.partial(guarded_connection, limits) if workers else None
    return {
        "http": protocol or guarded_protocol(limits),
        "loop": LOOP,  # (only `uvicorn.run` and `Server.run` pick it; `serve` runs in the caller's)
        "ws": "none",  # neither server speaks WebSocket: an upgrade stays plain HTTP
        # The TCP peer is the source for every per-source limit: a client on loopback (which
        # uvicorn trusts by default) must not pick another address with X-Forwarded-For.
        "proxy_headers": False,
    }

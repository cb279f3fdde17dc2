"""uvicorn's h11 protocol with the guards it lacks: a deadline for the request head, caps on
open connections (overall and per source), and no unread body holding a connection.

uvicorn has a keep-alive timeout but no deadline before the first request, nor for a head that
trickles in a byte at a time (slowloris), and its `limit_concurrency` counts those idle
connections too, so it would turn everyone away. Here, when a cap is reached, the oldest
connection of the crowding source whose request has not fully arrived (an idle keep-alive, a
head or a body still trickling in) is closed to make room; only when every connection is busy
serving a complete request is the newcomer refused (503). A slow client therefore never keeps a
well-behaved one out, and whatever it holds is released by the deadlines.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

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
_ARRIVING = (h11.IDLE, h11.SEND_BODY)  # their states while the request is not all here


class ConnectionRegistry:
    """Open connections by source, oldest first; picks the one that makes room for a newcomer."""

    def __init__(self, limits: ConnectionLimits, log: SummaryLog) -> None:
        self.limits = limits
        self.log = log
        self._by_source: dict[str, dict[GuardedH11Protocol, None]] = {}
        self.count = 0

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Register `connection`, closing an idle one at a cap; False when none can go."""
        mine = self._by_source.get(connection.source, {})
        if len(mine) >= self.limits.max_connections_per_source and not self._evict(mine):
            return False
        if self.count >= self.limits.max_connections and not self._evict_crowding():
            return False
        self._by_source.setdefault(connection.source, {})[connection] = None
        self.count += 1
        return True

    def remove(self, connection: GuardedH11Protocol) -> None:
        """Forget `connection` (idempotent)."""
        mine = self._by_source.get(connection.source)
        if mine is None or connection not in mine:
            return
        del mine[connection]
        self.count -= 1
        if not mine:
            del self._by_source[connection.source]

    def _evict(self, connections: dict[GuardedH11Protocol, None]) -> bool:
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


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` plus the head deadline, the connection caps and the unread-body deadline."""

    registry: ClassVar[ConnectionRegistry]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        throttle_warnings(self.logger)  # "Invalid HTTP request received." and the like
        self.source = UNKNOWN
        self._head_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None

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
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before the body was read (a refusal): the rest may come, but not forever.
            self._drain_timer = self.loop.call_later(self.limits.body_timeout, self._drain_expired)

    def evictable(self) -> bool:
        """True while the request has not fully arrived and no response is under way."""
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        return self.conn.their_state in _ARRIVING and not answering

    def _follow_request(self) -> None:
        """Start the head deadline when a new request begins; stop timers once their part is in."""
        state = self.conn.their_state
        if state is not h11.SEND_BODY and self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if state is h11.IDLE:
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(
                    self.limits.header_timeout, self._head_expired
                )
        elif self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        """Cut a connection whose request head is still incomplete: 408 if one was started."""
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        pending, _ = self.conn.trailing_data
        if pending:
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


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server, with its own registry of connections."""

    class Guarded(GuardedH11Protocol):
        registry = ConnectionRegistry(limits, SummaryLog(logger))

    return Guarded


_WORKER_PROTOCOLS: dict[ConnectionLimits, type[GuardedH11Protocol]] = {}


def guarded_connection(limits: ConnectionLimits, **kwargs: Any) -> GuardedH11Protocol:
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
        "ws": "none",  # neither server speaks WebSocket: an upgrade stays plain HTTP
        # The TCP peer is the source for every per-source limit: a client on loopback (which
        # uvicorn trusts by default) must not pick another address with X-Forwarded-For.
        "proxy_headers": False,
    }

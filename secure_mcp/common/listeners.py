"""Listening sockets: `localhost` means both loopback families, so no one can take the other.

A server bound to 127.0.0.1 only leaves [::1] on the same port free for any local program;
clients that resolve `localhost` to ::1 first (many do) would then send their requests, codes
and tokens to that program. So for `localhost` both 127.0.0.1 and ::1 are bound, and failing to
bind either is an error, except where this machine has no IPv6 at all (then no program can
take ::1 either).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from dataclasses import dataclass

SocketFactory = Callable[[int], socket.socket]
LOOPBACK_ADDRESSES = ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1"))
NO_IPV6 = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})


class ListenError(OSError):
    """An address could not be bound; the message says which and why."""


@dataclass
class Listeners:
    """Bound sockets to hand to the server, and a line saying where it listens."""

    sockets: list[socket.socket]
    where: str

    def close(self) -> None:
        """Close every socket (when the server will not run after all)."""
        for sock in self.sockets:
            sock.close()


def _stream_socket(family: int) -> socket.socket:
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose `proto` says TCP, and
    # accepted connections inherit it. Without it every response after the first on a kept-alive
    # connection waited about 40 ms (Nagle's algorithm against the client's delayed ACK).
    return socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)


def _bind(family: int, address: str, port: int, factory: SocketFactory) -> socket.socket:
    """One socket bound to (address, port); IPv6 only for an IPv6 address (no mapped IPv4)."""
    sock = factory(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts; never REUSEPORT
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _shown(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def loopback_listeners(port: int, factory: SocketFactory = _stream_socket) -> Listeners:
    """127.0.0.1 and ::1 on `port` (0: the same free port for both); ListenError naming the
    address that is taken."""
    bound: list[socket.socket] = []
    skipped = ""
    try:
        for family, address in LOOPBACK_ADDRESSES:
            try:
                bound.append(_bind(family, address, port, factory))
                port = port or int(bound[0].getsockname()[1])
            except OSError as exc:
                if family == socket.AF_INET6 and exc.errno in NO_IPV6:
                    skipped = " (this machine has no IPv6 loopback)"
                    continue
                raise ListenError(
                    f"cannot listen on {_shown(address, port)}: {exc.strerror or exc}. Another "
                    "program holds it; for a localhost issuer both loopback addresses must be "
                    "this server's"
                ) from None
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    where = " and ".join(_shown(s.getsockname()[0], port) for s in bound)
    return Listeners(bound, where + skipped)


def host_listener(host: str, port: int, factory: SocketFactory = _stream_socket) -> Listeners:
    """`host`:`port` bound now, as uvicorn would bind it, so that a taken port stops the server
    before it prints anything; ListenError naming the address otherwise."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = factory(family)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts; never REUSEPORT
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(
            f"cannot listen on {_shown(host, port)}: {exc.strerror or exc}. Another program "
            "holds it: stop it, or choose another --port"
        ) from None
    sock.set_inheritable(True)
    return Listeners([sock], _shown(host, port))

"""Who a connection or request comes from, as a key for per-source limits."""

from __future__ import annotations

import ipaddress
from typing import Any

UNKNOWN = "unknown"


def source_of(host: str | None) -> str:
    """The limit key of a peer address: IPv4 as is, IPv6 by its /64 (one subscriber's network).

    An IPv4-mapped IPv6 address counts as the IPv4 address inside it. Anything that is not an IP
    address (a Unix socket, a missing peer) shares one key, so it is limited rather than free.
    """
    if not host:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def scope_source(scope: Any) -> str:
    """The limit key of an ASGI request: the TCP peer (never a forwarded-for header)."""
    client = scope.get("client")
    return source_of(client[0] if client else None)

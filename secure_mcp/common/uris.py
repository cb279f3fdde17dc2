"""URL rules both servers share: the canonical resource form, loopback hosts, https elsewhere."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
# The loopback names as `urlsplit().hostname` gives them: what an RFC 8252 7.3 redirect URI and
# the Host header of a loopback-bound server may name (not 127.0.0.2 and the like)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def canonical_resource(uri: str) -> str:
    """`uri` in canonical form: lower-case scheme and host, no default port.

    RFC 3986 6.2.2.1 and 6.2.3: scheme and host are case-insensitive and an explicit default
    port changes nothing; the MCP authorization specification (canonical server URI) asks
    servers to accept such variants. Everything else is kept as given: the path (case-sensitive;
    `/mcp` and `/mcp/` stay different resources), percent-encoding, user info, query. Raises
    ValueError when the port is not a number in range.
    """
    parts = urlsplit(uri)
    if not parts.hostname:
        return uri
    scheme = parts.scheme.lower()
    port = parts.port  # ValueError when malformed
    host = parts.hostname  # lower-cased, brackets removed
    netloc = bracketed(host)
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        netloc = f"{userinfo}@{netloc}"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path, parts.query, parts.fragment))


def bracketed(host: str) -> str:
    """An IPv6 literal in brackets, as in a URL or a Host header."""
    return f"[{host}]" if ":" in host else host


def host_port(host: str, port: int) -> str:
    """`host:port` as in a Host header."""
    return f"{bracketed(host)}:{port}"


def is_loopback_host(host: str) -> bool:
    """`localhost`, or a loopback IP literal (127.0.0.0/8, ::1); brackets allowed."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def insecure_http(url: str) -> bool:
    """True for a plain-http URL whose host is not loopback (RFC 8414 2, RFC 9728 2: https)."""
    parts = urlsplit(url)
    return parts.scheme.lower() == "http" and not is_loopback_host(parts.hostname or "")

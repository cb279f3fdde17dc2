"""Redirect URI rules: what may be registered (RFC 7591, OAuth 2.1 2.3) and how it matches."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from secure_mcp.common.uris import LOOPBACK_NAMES
from secure_mcp.oauth.errors import InvalidRedirectUri

MAX_LENGTH = 2000


def _split(uri: str) -> SplitResult | None:
    """`uri` split into parts, or None when it does not parse (e.g. a bad port)."""
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        return None
    return parts


def is_loopback(uri: str) -> bool:
    """An http URI on a loopback host: the native-app redirect of RFC 8252 7.3."""
    parts = _split(uri)
    return parts is not None and parts.scheme == "http" and parts.hostname in LOOPBACK_NAMES


def check_registrable(uri: str) -> None:
    """InvalidRedirectUri unless `uri` is https or http on a loopback host (OAuth 2.1 2.3.1)."""
    if not uri or len(uri) > MAX_LENGTH:
        raise InvalidRedirectUri("redirect URI is empty or too long")
    if "#" in uri:  # RFC 6749 3.1.2: no fragment
        raise InvalidRedirectUri(f"redirect URI must not have a fragment: {uri}")
    if "*" in uri:  # exact matching only: no wildcards
        raise InvalidRedirectUri(f"redirect URI must not contain a wildcard: {uri}")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in uri):
        raise InvalidRedirectUri("redirect URI must not contain whitespace or control characters")
    if not uri.isascii():  # RFC 3986: a URI is ASCII; a look-alike host must show as xn--
        raise InvalidRedirectUri(
            "redirect URI must be ASCII: write an international host name in its xn-- form"
        )
    parts = _split(uri)
    if parts is None or not parts.hostname or "@" in parts.netloc:
        raise InvalidRedirectUri(f"redirect URI must be an absolute URL with a host: {uri}")
    if "%" in parts.netloc:  # browsers decode %-escapes in a host, then apply IDNA
        raise InvalidRedirectUri(f"redirect URI host must not be percent-encoded: {uri}")
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_NAMES):
        return
    raise InvalidRedirectUri(f"redirect URI must be https, or http on a loopback host: {uri}")


def matches(registered: str, requested: str) -> bool:
    """Exact string match; for a loopback redirect any port matches (RFC 8252 7.3)."""
    if registered == requested:
        return True
    if not (is_loopback(registered) and is_loopback(requested)):
        return False
    a, b = urlsplit(registered), urlsplit(requested)
    return (a.scheme, a.hostname, a.path, a.query, a.username) == (
        b.scheme,
        b.hostname,
        b.path,
        b.query,
        b.username,
    ) and a.fragment == b.fragment == ""


def sole_redirect(registered: list[str]) -> str | None:
    """The redirect URI to use when none is sent: the only one, unless it is loopback."""
    if len(registered) == 1 and not is_loopback(registered[0]):
        return registered[0]
    return None


def find_match(registered: list[str], requested: str) -> str | None:
    """`requested` when it matches one of the client's registered redirect URIs."""
    if "#" in requested:
        return None
    return requested if any(matches(uri, requested) for uri in registered) else None

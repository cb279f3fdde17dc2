"""Scopes a request may ask for (RFC 6749 3.3); its resource is rfc8707's."""

from __future__ import annotations

from collections.abc import Sequence

from secure_mcp.oauth.errors import InvalidScope
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.settings import OAuthSettings

# Scopes clients send by convention (refresh tokens, OpenID sign-in), and shared client metadata
# documents carry: ignored when this server does not offer them, never an error.
CONVENTIONAL_SCOPES = frozenset({"offline_access", "openid"})


def without_conventional(scopes: list[str], offered: Sequence[str]) -> list[str]:
    """`scopes` minus the conventional ones this server does not offer."""
    return [s for s in scopes if s in offered or s not in CONVENTIONAL_SCOPES]


def allowed_scopes(settings: OAuthSettings, client: Client) -> list[str]:
    """Scopes this client may request: the server's, narrowed by the client's registration."""
    if client.scope:
        registered = set(client.scope.split())
        return [s for s in settings.scopes if s in registered]
    return list(settings.scopes)


def requested_scope(settings: OAuthSettings, client: Client, scope: str | None) -> str:
    """The granted scope string; no scope means the resource's default scopes (RFC 6749 3.3)."""
    allowed = allowed_scopes(settings, client)
    asked = without_conventional((scope or "").split(), settings.scopes)
    if not asked:
        if not allowed:
            raise InvalidScope("the client is not allowed any scope")
        return " ".join(allowed)
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise InvalidScope(f"unknown or not allowed scope: {' '.join(unknown)}")
    return " ".join(dict.fromkeys(asked))


def narrowed_scope(granted: str, scope: str | None, offered: Sequence[str]) -> str:
    """Refresh scope: a subset of what was granted, never wider (RFC 6749 6)."""
    asked = without_conventional((scope or "").split(), offered)
    if not asked:
        return granted
    if not set(asked) <= set(granted.split()):
        raise InvalidScope("refresh may narrow the scope, never widen it")
    return " ".join(dict.fromkeys(asked))

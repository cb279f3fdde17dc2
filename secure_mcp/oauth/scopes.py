"""Scopes and resources a request may ask for (RFC 6749 3.3, RFC 8707 2)."""

from __future__ import annotations

from urllib.parse import urlsplit

from secure_mcp.oauth.errors import InvalidScope, InvalidTarget
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.settings import OAuthSettings


def allowed_scopes(settings: OAuthSettings, client: Client) -> list[str]:
    """Scopes this client may request: the server's, narrowed by the client's registration."""
    if client.scope:
        registered = set(client.scope.split())
        return [s for s in settings.scopes if s in registered]
    return list(settings.scopes)


def requested_scope(settings: OAuthSettings, client: Client, scope: str | None) -> str:
    """The granted scope string; no scope means the resource's default scopes (RFC 6749 3.3)."""
    allowed = allowed_scopes(settings, client)
    if not scope:
        if not allowed:
            raise InvalidScope("the client is not allowed any scope")
        return " ".join(allowed)
    asked = scope.split()
    unknown = [s for s in asked if s not in allowed]
    if unknown:
        raise InvalidScope(f"unknown or not allowed scope: {' '.join(unknown)}")
    return " ".join(dict.fromkeys(asked))


def narrowed_scope(granted: str, scope: str | None) -> str:
    """Refresh scope: a subset of what was granted, never wider (RFC 6749 6)."""
    if not scope:
        return granted
    asked = scope.split()
    if not set(asked) <= set(granted.split()):
        raise InvalidScope("refresh may narrow the scope, never widen it")
    return " ".join(dict.fromkeys(asked))


def requested_resource(settings: OAuthSettings, resource: str | None) -> str:
    """RFC 8707 2: a configured resource; omitted means the only one, when exactly one exists."""
    if resource is None:
        if len(settings.resources) == 1:
            return settings.resources[0]
        raise InvalidTarget("resource is required: several resources are configured")
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc or "#" in resource:
        raise InvalidTarget("resource must be an absolute URI without a fragment")
    if resource not in settings.resources:
        raise InvalidTarget(f"unknown resource: {resource}")
    return resource

"""RFC 8707 resource indicators: which resource a request names, in canonical form.

One audience per token: a request names one resource (or none, when exactly one is configured),
the authorization code and the refresh token keep it, and a resource sent again at /token must be
that one. The resource then travels with the token: it is the `aud` of a JWT access token
(rfc9068) and introspection answers only the resource server it was issued for (rfc7662).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from secure_mcp.common.uris import canonical_resource
from secure_mcp.oauth.errors import InvalidTarget
from secure_mcp.oauth.settings import OAuthSettings


def requested_resource(settings: OAuthSettings, resource: str | None) -> str:
    """RFC 8707 2: a configured resource; omitted means the only one, when exactly one exists."""
    if resource is None:
        if len(settings.resources) == 1:
            return settings.resources[0]
        raise InvalidTarget("resource is required: several resources are configured")
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc or "#" in resource:
        raise InvalidTarget("resource must be an absolute URI without a fragment")
    canonical = canonical_target(resource)
    if canonical not in settings.resources:  # configured resources are canonical
        raise InvalidTarget(f"unknown resource: {resource}")
    return canonical


def canonical_target(resource: str) -> str:
    """`resource` in canonical form (MCP canonical server URI); a malformed one is InvalidTarget."""
    try:
        return canonical_resource(resource)
    except ValueError:
        raise InvalidTarget("resource has a malformed port") from None


def check_same_resource(resource: str | None, granted: str) -> None:
    """RFC 8707 2.2: a resource sent at /token must be the one authorized (canonical forms)."""
    if resource is not None and canonical_target(resource) != granted:
        raise InvalidTarget("resource differs from the one authorized")


def several_resources() -> InvalidTarget:
    """RFC 8707 2: a repeated `resource` asks for several audiences; tokens here have one."""
    return InvalidTarget("one resource per request: this server issues single-audience tokens")

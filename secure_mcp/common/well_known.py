"""Well-known URIs (RFC 8615) of OAuth metadata: the suffix goes between host and path."""

from __future__ import annotations

from urllib.parse import urlsplit

AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"  # RFC 8414 3
PROTECTED_RESOURCE = "/.well-known/oauth-protected-resource"  # RFC 9728 3
OPENID_CONFIGURATION = "/.well-known/openid-configuration"  # OpenID Connect Discovery 1.0, 4


def well_known_url(url: str, suffix: str, *, strip_slash: bool = True) -> str:
    """`suffix` inserted between the host and the path of `url` (query and fragment dropped).

    RFC 8414 3.1: a terminating "/" of the issuer's path is removed first (`strip_slash`);
    RFC 9728 3.1 inserts before the resource's path as it is (`strip_slash=False`).
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/") if strip_slash else parts.path
    return f"{parts.scheme}://{parts.netloc}{suffix}{path}"

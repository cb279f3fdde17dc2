"""What the client checks before a code, a verifier, a secret or a token leaves it.

- MCP authorization, "Communication Security": authorization server endpoints MUST be https;
  only loopback addresses may be plain http (a local deployment).
- RFC 9700 4.4: a sign-in is bound to the authorization server it started with. The issuer, its
  token endpoint and the redirect URI are recorded when the browser is sent off; the code and
  verifier go only to that token endpoint, and the answer is taken only on that redirect URI.
- RFC 6750 2.1: an access token is sent in a header, so it must be a `b64token`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp.shared.auth import OAuthMetadata

from secure_mcp.client.auth.errors import ClientConnectError

_ENDPOINTS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "revocation_endpoint",
)
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 2.1


def is_loopback(host: str | None) -> bool:
    """`localhost` or a loopback IP literal (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def secure_url(url: str) -> bool:
    """https, or http on a loopback address."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback(parts.hostname))


def require_https(metadata: OAuthMetadata) -> None:
    """Refuse an authorization server with an endpoint that is neither https nor loopback."""
    for name in _ENDPOINTS:
        value = getattr(metadata, name)
        if value is not None and not secure_url(str(value)):
            raise ClientConnectError(
                f"The authorization server's {name} {value} is not https; the MCP "
                "authorization specification requires https (plain http only on this "
                "machine), so nothing was sent there.",
                "insecure_transport",
            )


def valid_access_token(token: str) -> bool:
    """RFC 6750 2.1: the characters a bearer token may have in an Authorization header."""
    return _B64TOKEN.fullmatch(token) is not None


@dataclass(frozen=True)
class Flow:
    """One sign-in: where the browser was sent and where its code may go (RFC 9700 4.4.2)."""

    issuer: str
    token_endpoint: str
    redirect_uri: str


def start_flow(metadata: OAuthMetadata, authorization_url: str) -> Flow:
    """Record the sign-in about to start at `authorization_url` (built from `metadata`)."""
    parts = urlsplit(authorization_url)
    endpoint = str(metadata.authorization_endpoint)
    if authorization_url.partition("?")[0] != endpoint.partition("?")[0]:
        raise ClientConnectError(
            f"The sign-in URL is not the authorization endpoint of {metadata.issuer}.",
            "invalid_request",
        )
    redirect_uri = parse_qs(parts.query).get("redirect_uri", [""])[0]
    return Flow(str(metadata.issuer), str(metadata.token_endpoint), redirect_uri)


def _form(request: httpx2.Request) -> dict[str, list[str]]:
    return parse_qs(request.content.decode("ascii", "replace"))


def check_code_exchange(
    flow: Flow | None, metadata: OAuthMetadata, request: httpx2.Request
) -> None:
    """The code and verifier go to the token endpoint of the sign-in's own server, or nowhere."""
    form = _form(request)
    same = (
        flow is not None
        and str(metadata.issuer) == flow.issuer
        and str(request.url) == flow.token_endpoint
        and form.get("redirect_uri") == [flow.redirect_uri]
    )
    if not same:
        started = flow.issuer if flow else "no sign-in"
        raise ClientConnectError(
            f"Refused to send the authorization code to {request.url.copy_with(query=None)}: "
            f"the sign-in started with {started} (RFC 9700 4.4, mix-up protection).",
            "invalid_request",
        )

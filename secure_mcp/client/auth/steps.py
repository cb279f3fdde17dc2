"""The steps of the OAuth flow as the provider sees them, and the failures it reports."""

from __future__ import annotations

from urllib.parse import parse_qs

import httpx2
from mcp.client.auth.utils import extract_field_from_www_auth

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.terminal import clean_line


def step_of(request: httpx2.Request) -> str:
    """Which OAuth step a request the provider makes belongs to (for the verbose trace)."""
    if request.method == "GET":  # the flow GETs only metadata documents
        return "discovery"
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        grant = parse_qs(request.content.decode("ascii", "replace")).get("grant_type", [""])[0]
        return "refresh" if grant == "refresh_token" else "token exchange"
    return "registration"


def malformed(exc: Exception, url: str) -> ClientConnectError:
    """One line for an answer the flow could not use."""
    first = clean_line(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:200]
    return ClientConnectError(
        f"The answer from {url} is malformed ({type(exc).__name__}: {first}); sign-in stopped.",
        "invalid_response",
    )


def without_token(request: httpx2.Request) -> httpx2.Request:
    """`request` once more without its token: the caller gets the server's own 401 or 403."""
    request.headers.pop("Authorization", None)
    return request


def still_refused(request: httpx2.Request) -> ClientConnectError:
    """The MCP server refused the token of a sign-in made for this very request."""
    return ClientConnectError(
        f"The server at {request.url.copy_with(query=None)} still refuses the sign-in (HTTP 401).",
        "invalid_token",
    )


def is_step_up(response: httpx2.Response) -> bool:
    """A 403 asking for more scope (RFC 6750 3.1)."""
    error = extract_field_from_www_auth(response, "error")
    return response.status_code == 403 and error == "insufficient_scope"

"""RFC 9728 3.3: the protected resource metadata must name the server the client connected to."""

from __future__ import annotations

from urllib.parse import urlsplit

from mcp.shared.auth_utils import resource_url_from_server_url

from secure_mcp.common.uris import LOOPBACK_NAMES
from secure_mcp.common.well_known import PROTECTED_RESOURCE


def same_resource(expected: str, resource: str) -> bool:
    """RFC 9728 3.3: PRM `resource` is the URL it was fetched for; only a final "/" may differ."""
    return expected.rstrip("/") == resource.rstrip("/")


def allowed_resources(server_url: str, prm_url: str | None, challenged: str | None) -> list[str]:
    """RFC 9728 3.3: what PRM fetched from `prm_url` may name as its `resource`.

    The server URL itself; and the origin too when the document came from the root well-known
    URL by fallback (not named in the challenge), since that URL is formed from the origin.
    """
    expected = resource_url_from_server_url(server_url)
    parts = urlsplit(expected)
    origin = f"{parts.scheme}://{parts.netloc}"
    if prm_url == origin + PROTECTED_RESOURCE and prm_url != challenged:
        return [expected, origin]
    return [expected]


def resource_mismatch_message(server_url: str, resource: str) -> str:
    """What to tell the user when PRM names another resource (RFC 9728 3.3)."""
    connected, named = urlsplit(server_url), urlsplit(resource)
    if server_url.startswith(resource.rstrip("/") + "/"):  # a parent: the whole origin or a tree
        return (
            f"The server at {server_url} says its resource URL is {resource}, a parent of "
            "its own; tokens for it would be good for every path there, so the client stopped. "
            "The server's metadata must name its own URL."
        )
    message = (
        f"The server at {server_url} says its resource URL is {resource}; "
        "its tokens would be for another address, so the client stopped."
    )
    if connected.hostname in LOOPBACK_NAMES and named.hostname in LOOPBACK_NAMES:
        message += " localhost and 127.0.0.1 are different origins to OAuth."
    return f"{message} Connect with --server {resource} (or MCP_SERVER_URL)."

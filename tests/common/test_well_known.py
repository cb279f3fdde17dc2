"""Well-known metadata URLs: the suffix between host and path (RFC 8414 3.1, RFC 9728 3.1)."""

from __future__ import annotations

import pytest

from secure_mcp.common.well_known import (
    AUTHORIZATION_SERVER,
    PROTECTED_RESOURCE,
    well_known_url,
)


@pytest.mark.parametrize(
    ("issuer", "url"),
    [
        pytest.param(
            "http://localhost:8003",
            "http://localhost:8003/.well-known/oauth-authorization-server",
            id="root",
        ),
        pytest.param(
            "https://as.example/tenant",
            "https://as.example/.well-known/oauth-authorization-server/tenant",
            id="path-inserted",
        ),
        pytest.param(
            "https://as.example/tenant/",
            "https://as.example/.well-known/oauth-authorization-server/tenant",
            id="terminating-slash-removed",
        ),
        pytest.param(
            "https://as.example/",
            "https://as.example/.well-known/oauth-authorization-server",
            id="root-slash",
        ),
    ],
)
def test_authorization_server_metadata_url(issuer: str, url: str) -> None:
    assert well_known_url(issuer, AUTHORIZATION_SERVER) == url


@pytest.mark.parametrize(
    ("resource", "url"),
    [
        pytest.param(
            "http://127.0.0.1:8000/mcp",
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp",
            id="path-inserted",
        ),
        pytest.param(
            "https://mcp.example/mcp/",
            "https://mcp.example/.well-known/oauth-protected-resource/mcp/",
            id="path-kept-as-is",
        ),
        pytest.param(
            "https://mcp.example/mcp?tenant=a",
            "https://mcp.example/.well-known/oauth-protected-resource/mcp",
            id="query-dropped",
        ),
    ],
)
def test_protected_resource_metadata_url(resource: str, url: str) -> None:
    assert well_known_url(resource, PROTECTED_RESOURCE, strip_slash=False) == url

"""RFC 8414 authorization server metadata, published with the issuer byte for byte."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.common.well_known import AUTHORIZATION_SERVER
from secure_mcp.oauth.rfc7523 import ALGORITHMS
from secure_mcp.oauth.settings import OAuthSettings

JWKS_PATH = "/jwks"
CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]


def metadata(settings: OAuthSettings) -> dict[str, Any]:
    """The metadata document (RFC 8414 2), advertising client ID metadata documents (CIMD)."""
    document = {
        "issuer": settings.issuer,  # RFC 8414 3.3: identical to the issuer used to fetch it
        "authorization_endpoint": settings.endpoint("/authorize"),
        "token_endpoint": settings.endpoint("/token"),
        "registration_endpoint": settings.endpoint("/register"),
        "introspection_endpoint": settings.endpoint("/introspect"),
        "revocation_endpoint": settings.endpoint("/revoke"),
        "scopes_supported": list(settings.scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        # RFC 8414 2: required with private_key_jwt; asymmetric only (RFC 8725 3.1)
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],  # OAuth 2.1 4.1.1: S256 only
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 3
        "client_id_metadata_document_supported": True,  # CIMD draft 5
        "dpop_signing_alg_values_supported": list(settings.dpop_algorithms),  # RFC 9449 5.1
    }
    if settings.jwt_access_tokens:  # RFC 8414 2: the keys resource servers verify JWTs with
        document["jwks_uri"] = settings.endpoint(JWKS_PATH)
    return document


def well_known_paths(settings: OAuthSettings) -> list[str]:
    """Root path, plus the path-inserted one for an issuer with a path (RFC 8414 3.1)."""
    paths = [AUTHORIZATION_SERVER]
    if settings.issuer_path:
        paths.append(AUTHORIZATION_SERVER + settings.issuer_path)
    return paths


class MetadataEndpoint:
    """GET /.well-known/oauth-authorization-server."""

    def __init__(self, settings: OAuthSettings) -> None:
        self.document = metadata(settings)

    async def handle(self, request: Request) -> Response:
        """The metadata as JSON; cacheable for a short while."""
        return JSONResponse(self.document, headers={"Cache-Control": "public, max-age=300"})

"""RFC 7662 token introspection, for authenticated resource servers and their own audience."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.oauth import resource_servers, tokens
from secure_mcp.oauth.errors import NO_STORE, InvalidRequest, OAuthError
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database

INACTIVE = {"active": False}
PARAMETERS = frozenset({"token", "token_type_hint"})  # RFC 7662 2.1


class IntrospectionEndpoint:
    """POST /introspect."""

    def __init__(self, settings: OAuthSettings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.verified = resource_servers.VerifiedCredentials()

    async def handle(self, request: Request) -> Response:
        """Answer an introspection request (RFC 7662 2.1, 2.2)."""
        try:
            # RFC 7662 2.1
            server = await resource_servers.authenticate(self.db, request, self.verified)
            form = await read_form(request, self.settings.max_body_bytes, PARAMETERS)
            if "token" not in form:
                raise InvalidRequest("token is required")
        except OAuthError as exc:
            return exc.response()
        token = await tokens.find(self.db, form["token"])
        # RFC 7662 2.2: not active, or for another audience: only {"active": false}
        if token is None or not tokens.is_active(token) or token.resource != server.resource:
            return JSONResponse(INACTIVE, headers=NO_STORE)
        body: dict[str, Any] = {
            "active": True,
            "aud": token.resource,
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.subject,
            "exp": token.expires_at,
            "iat": token.issued_at,
            "iss": self.settings.issuer,
            "token_type": "DPoP" if token.jkt else "Bearer",
        }
        if token.jkt:  # RFC 9449 6.2: the key the resource server must see a proof of
            body["cnf"] = {"jkt": token.jkt}
        if tokens.is_machine(token):  # client_credentials: no user; the client is the subject
            body["subject_type"] = "client"
        return JSONResponse(body, headers=NO_STORE)

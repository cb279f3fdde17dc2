"""RFC 7009 token revocation: 200 for any token; a refresh token takes its family with it."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import Response

from secure_mcp.oauth import clients, tokens
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.errors import NO_STORE, InvalidRequest, OAuthError
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.models import Token
from secure_mcp.oauth.rfc7523 import Assertions
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database

PARAMETERS = frozenset(  # RFC 7009 2.1, and client authentication (RFC 7523 2.2)
    {"token", "token_type_hint", "client_id", "client_secret"}
    | {"client_assertion", "client_assertion_type"}
)


@dataclass(eq=False)
class RevocationEndpoint:
    """POST /revoke."""

    settings: OAuthSettings
    db: Database
    documents: Documents | None = None
    _: KW_ONLY
    audit: AuditLog = NO_AUDIT
    known: clients.KnownClients | None = None  # registered clients read in the last seconds
    assertions: Assertions | None = None

    async def handle(self, request: Request) -> Response:
        """Revoke the client's own token; unknown or foreign tokens still get 200 (RFC 7009 2.2)."""
        try:
            form = await read_form(request, self.settings.max_body_bytes, PARAMETERS)
            # RFC 7009 2.1: the client authenticates as at the token endpoint
            client = await clients.authenticate(
                self.db, request, form, self.documents, self.known, assertions=self.assertions
            )
            if "token" not in form:
                raise InvalidRequest("token is required")
        except OAuthError as exc:
            return exc.response()
        token = await tokens.find(self.db, form["token"])
        if token is not None and token.client_id == client.client_id:
            async with self.db.write() as session:
                if token.kind == tokens.REFRESH:
                    await tokens.revoke_family(session, token.family_id)
                else:
                    await session.execute(
                        update(Token)
                        .where(Token.token_hash == token.token_hash)
                        .values(revoked=True)
                    )
            self.audit.record(
                "token_revoked",
                request,
                client_id=client.client_id,
                user=token.subject,
                resource=token.resource,
                token_type=f"{token.kind}_token",
                family=token.family_id,
            )
        return Response(status_code=200, headers=NO_STORE)

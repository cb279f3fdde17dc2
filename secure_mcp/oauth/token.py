"""The token endpoint (RFC 6749 3.2, OAuth 2.1 3.2): client authentication, then one grant."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.oauth import clients, tokens
from secure_mcp.oauth import token_endpoint as grants
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.dpop import TokenEndpointProofs
from secure_mcp.oauth.errors import NO_STORE, InvalidRequest, OAuthError, UnsupportedGrantType
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.rfc7523 import Assertions
from secure_mcp.oauth.rfc9068 import JwtSigner
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database
from secure_mcp.oauth.tokens import Grant

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# OAuth 2.1 4.1.3, 4.3.1 and client authentication (2.4); anything else is ignored (3.2)
PARAMETERS = frozenset(
    {"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "resource"}
    | {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


class TokenEndpoint:
    """POST /token."""

    def __init__(
        self,
        settings: OAuthSettings,
        db: Database,
        proofs: TokenEndpointProofs,
        documents: Documents | None = None,
        signer: JwtSigner | None = None,
        *,
        audit: AuditLog = NO_AUDIT,
        issued: Callable[[str], None] | None = None,
        known: clients.KnownClients | None = None,
        assertions: Assertions | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.documents = documents
        self.assertions = assertions  # private_key_jwt (RFC 7523 2.2)
        self.signer = signer  # JWT access tokens (RFC 9068) when set
        self.proofs = proofs
        self.audit = audit
        self.issued = issued  # counts tokens issued by grant type (metrics)
        self.known = known  # registered clients read in the last seconds

    async def handle(self, request: Request) -> Response:
        """Answer a token request; every answer carries Cache-Control: no-store (RFC 6749 5.1)."""
        try:
            form = await read_form(request, self.settings.max_body_bytes, PARAMETERS)
            client = await clients.authenticate(
                self.db, request, form, self.documents, self.known, assertions=self.assertions
            )
            grant_type = form.get("grant_type")
            if not grant_type:
                raise InvalidRequest("grant_type is required")
            if grant_type not in GRANT_TYPES:
                raise UnsupportedGrantType(f"unsupported grant_type: {grant_type}")
            jkt = await self.proofs.check(request)  # RFC 9449 5: DPoP-bound tokens
            body, grant = await grants.exchange(
                self.db, self.settings, client, form, self.signer, jkt
            )
        except grants.ReplayedGrant as exc:  # the family is revoked by now
            used = "code" if form.get("grant_type") == "authorization_code" else "refresh_token"
            self._record(f"{used}_reuse_detected", request, exc.grant, reason=exc.description)
            return exc.response()
        except OAuthError as exc:
            return exc.response()
        event = "token_refreshed" if grant_type == "refresh_token" else "token_issued"
        self._record(event, request, grant, grant_type=grant_type, scope=body["scope"])
        if self.issued is not None:
            self.issued(grant_type)
        return JSONResponse(body, headers=NO_STORE)

    def _record(self, event: str, request: Request, grant: Grant, **fields: str) -> None:
        """One audit line about `grant`'s family (never a token)."""
        self.audit.record(
            event,
            request,
            client_id=grant.client_id,
            # client_credentials: no user, the client is the subject (grant_type says so)
            user=None if tokens.is_machine_family(grant.family_id) else grant.subject,
            resource=grant.resource,
            family=grant.family_id,
            **fields,
        )

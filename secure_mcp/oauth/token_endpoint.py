"""The token endpoint (RFC 6749 3.2, OAuth 2.1 3.2): client authentication, then one grant
(authorization_code, refresh_token or client_credentials)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.oauth import clients, rfc7636, tokens
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.dpop import TokenEndpointProofs
from secure_mcp.oauth.errors import (
    NO_STORE,
    InvalidGrant,
    InvalidRequest,
    OAuthError,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.models import AuthorizationCode, Client
from secure_mcp.oauth.rfc7523 import Assertions
from secure_mcp.oauth.rfc8707 import check_same_resource, requested_resource
from secure_mcp.oauth.rfc9068 import JwtSigner
from secure_mcp.oauth.scopes import narrowed_scope, requested_scope
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.statements import SessionStatements, rowcount
from secure_mcp.oauth.storage import Database, now, token_hash

MACHINE_GRANT = "client_credentials"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# OAuth 2.1 4.1.3, 4.3.1 and client authentication (2.4); anything else is ignored (3.2)
PARAMETERS = frozenset(
    {"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope", "resource"}
    | {"client_id", "client_secret", "client_assertion", "client_assertion_type"}
)


def _same_key(bound: str, jkt: str | None) -> bool:
    """True when the request's proof is of the key a code or token is bound to."""
    return jkt is not None and hmac.compare_digest(bound, jkt)


def _bindings(client: Client, jkt: str | None) -> dict[str, str | None]:
    """The access token is bound to the proof's key; so is a public client's refresh token
    (RFC 9449 5: a confidential client's is bound by its authentication already)."""
    public = client.token_endpoint_auth_method == "none"  # noqa: S105 - a method name
    return {"jkt": jkt, "refresh_jkt": jkt if public else None}


class ReplayedGrant(InvalidGrant):
    """A used code or rotated refresh token came back: its family must be revoked."""

    def __init__(self, description: str, family_id: str, grant: tokens.Grant) -> None:
        super().__init__(description)
        self.family_id = family_id
        self.grant = grant  # whose family it was (for the audit log)


def _check_code(
    code: AuthorizationCode, client: Client, form: dict[str, str], jkt: str | None
) -> None:
    """The code's bindings (RFC 6749 4.1.3, RFC 7636 4.6, RFC 8707 2.2, RFC 9449 10)."""
    if code.expires_at <= now():
        raise InvalidGrant("the authorization code has expired")
    if code.dpop_jkt is not None and not _same_key(code.dpop_jkt, jkt):
        raise InvalidGrant("the authorization code is bound to another DPoP key (dpop_jkt)")
    # OAuth 2.1 4.1.3: redirect_uri is no longer sent (PKCE binds the code); one that is sent
    # must still be the authorization request's
    sent = form.get("redirect_uri")
    if sent is not None and sent != code.redirect_uri:
        raise InvalidGrant("redirect_uri differs from the authorization request")
    rfc7636.verify(form.get("code_verifier"), code.code_challenge)
    check_same_resource(form.get("resource"), code.resource)


async def _redeem_code(
    db: Database,
    settings: OAuthSettings,
    client: Client,
    form: dict[str, str],
    signer: JwtSigner | None,
    jkt: str | None,
) -> tuple[dict[str, Any], tokens.Grant]:
    """Mark the code used (only once, however many try at the same time) and issue tokens."""
    value = form.get("code", "")
    if not value:
        raise InvalidRequest("code is required")
    async with db.write() as session:
        code = await session.get(AuthorizationCode, token_hash(value))
        if code is None or code.client_id != client.client_id:
            raise InvalidGrant("unknown authorization code")
        result = await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_hash == code.code_hash, AuthorizationCode.used.is_(False))
            .values(used=True)
            .execution_options(synchronize_session=False)  # the loaded row is not read again
        )
        grant = tokens.Grant(
            client.client_id,
            code.subject,
            code.scope,
            code.resource,
            code.family_id,
            **_bindings(client, jkt),
        )
        if rowcount(result) != 1:  # OAuth 2.1 4.1.3: single use
            raise ReplayedGrant("the authorization code was already used", code.family_id, grant)
        _check_code(code, client, form, jkt)
        with_refresh = "refresh_token" in client.grant_types
        ttl = settings.refresh_token_ttl if with_refresh else settings.access_token_ttl
        tokens.start_family(session, code.family_id, now() + ttl)
        body = await tokens.issue(
            SessionStatements(session),
            settings,
            grant,
            access_scope=code.scope,
            with_refresh=with_refresh,
            signer=signer,
        )
    return body, grant


async def _rotate_refresh(
    db: Database,
    settings: OAuthSettings,
    client: Client,
    form: dict[str, str],
    signer: JwtSigner | None,
    jkt: str | None,
) -> tuple[dict[str, Any], tokens.Grant]:
    """Rotate the refresh token (RFC 9700 4.14.2); a reused one revokes its family."""
    if "refresh_token" not in form:  # OAuth 2.1 4.3.1: required
        raise InvalidRequest("refresh_token is required")
    if "refresh_token" not in client.grant_types:
        raise UnauthorizedClient("the client did not register the refresh_token grant")
    async with db.transaction() as statements:
        old = await tokens.refresh_row(statements, form["refresh_token"])
        if old is None or old.client_id != client.client_id:
            raise InvalidGrant("unknown refresh token")
        if old.revoked or old.expires_at <= now():
            raise InvalidGrant("the refresh token is revoked or expired")
        if old.jkt is not None and not _same_key(old.jkt, jkt):
            # RFC 9449 5: checked before rotation, so a stolen token cannot burn the family
            raise InvalidGrant("the refresh token is bound to another DPoP key")
        if not await tokens.hold_family(
            statements, old.family_id, now() + settings.refresh_token_ttl
        ):  # revoked meanwhile, perhaps by another instance
            raise InvalidGrant("the refresh token is revoked or expired")
        rotated = await tokens.rotate(statements, old.token_hash)
        grant = tokens.Grant(
            client.client_id,
            old.subject,
            old.scope,
            old.resource,
            old.family_id,
            **_bindings(client, jkt),
        )
        if not rotated:
            raise ReplayedGrant("the refresh token was already used", old.family_id, grant)
        scope = narrowed_scope(old.scope, form.get("scope"), settings.scopes)
        check_same_resource(form.get("resource"), old.resource)
        body = await tokens.issue(
            statements, settings, grant, access_scope=scope, with_refresh=True, signer=signer
        )
    return body, grant


async def _client_credentials(
    db: Database,
    settings: OAuthSettings,
    client: Client,
    form: dict[str, str],
    signer: JwtSigner | None,
    jkt: str | None = None,
) -> tuple[dict[str, Any], tokens.Grant]:
    """OAuth 2.1 4.2: a token for the client itself (its own subject), no refresh token; bound
    to the DPoP key of the request's proof, if any (RFC 9449 5)."""
    # OAuth 2.1 4.2: confidential clients only, and only those registered for the grant
    if client.token_endpoint_auth_method == "none" or MACHINE_GRANT not in client.grant_types:  # noqa: S105
        raise UnauthorizedClient("the client is not registered for the client_credentials grant")
    resource = requested_resource(settings, form.get("resource"))  # RFC 8707 2, as for codes
    scope = requested_scope(settings, client, form.get("scope"))
    family = tokens.machine_family()
    grant = tokens.Grant(client.client_id, client.client_id, scope, resource, family, jkt=jkt)
    async with db.transaction() as statements:
        # OAuth 2.1 4.2.3: a refresh token SHOULD NOT be issued; the client simply asks again
        body = await tokens.issue(
            statements, settings, grant, access_scope=scope, with_refresh=False, signer=signer
        )
    return body, grant


async def exchange(
    db: Database,
    settings: OAuthSettings,
    client: Client,
    form: dict[str, str],
    signer: JwtSigner | None = None,
    jkt: str | None = None,
) -> tuple[dict[str, Any], tokens.Grant]:
    """Run the requested grant: the response body and what it grants (committed); a replay
    revokes the family in its own committed transaction, then is raised again.

    With `signer`, access tokens are RFC 9068 JWTs; refresh tokens stay opaque. With `jkt` (a
    valid DPoP proof's key), the tokens are bound to that key (RFC 9449 5).
    """
    grant_type = form.get("grant_type")
    try:
        if grant_type == "authorization_code":
            return await _redeem_code(db, settings, client, form, signer, jkt)
        if grant_type == MACHINE_GRANT:
            return await _client_credentials(db, settings, client, form, signer, jkt)
        return await _rotate_refresh(db, settings, client, form, signer, jkt)
    except ReplayedGrant as replay:
        async with db.write() as session:
            await tokens.revoke_family(session, replay.family_id)
        raise


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
            body, grant = await exchange(self.db, self.settings, client, form, self.signer, jkt)
        except ReplayedGrant as exc:  # the family is revoked by now
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

    def _record(self, event: str, request: Request, grant: tokens.Grant, **fields: str) -> None:
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

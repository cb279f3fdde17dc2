"""RFC 7591 dynamic client registration: every field validated, secrets stored hashed."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.common.ratelimit import Limiter
from secure_mcp.oauth import redirect_uris, rfc7523
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.display import invisible_characters
from secure_mcp.oauth.errors import (
    NO_STORE,
    InitialAccessTokenRequired,
    InvalidClientMetadata,
    InvalidInitialAccessToken,
    OAuthError,
)
from secure_mcp.oauth.forms import BodyTooLarge, read_body
from secure_mcp.oauth.limits import ServerBusy, TooManyRequests, source
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.scopes import without_conventional
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, now, token_hash

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
MACHINE_GRANT = "client_credentials"
ShortText = Field(default=None, max_length=200)
# Every text field but redirect_uris (which must be ASCII: redirect_uris.check_registrable).
TEXT_FIELDS = (
    "client_name", "scope", "client_uri", "logo_uri", "tos_uri", "policy_uri", "contacts",
    "software_id", "software_version",
)  # fmt: skip


class ClientMetadata(BaseModel):
    """The registration request (RFC 7591 2); unknown fields are ignored (RFC 7591 2)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    redirect_uris: list[str] = Field(default=[], max_length=10)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"  # noqa: S105 - RFC 7591 2 default
    grant_types: list[GrantType] = Field(default=["authorization_code"], min_length=1)
    response_types: list[Literal["code"]] = Field(default=["code"], min_length=1)
    jwks: dict[str, Any] | None = None  # private_key_jwt: the public keys (RFC 7591 2)
    jwks_uri: str | None = Field(default=None, max_length=2000)
    application_type: Literal["native", "web"] | None = None
    client_name: str | None = ShortText
    scope: str | None = Field(default=None, max_length=1000)
    client_uri: str | None = Field(default=None, max_length=2000)
    logo_uri: str | None = Field(default=None, max_length=2000)
    tos_uri: str | None = Field(default=None, max_length=2000)
    policy_uri: str | None = Field(default=None, max_length=2000)
    contacts: list[str] | None = Field(default=None, max_length=10)
    software_id: str | None = ShortText
    software_version: str | None = ShortText

    @field_validator("client_uri", "logo_uri", "tos_uri", "policy_uri")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        """Informational URLs must be http(s)."""
        if value is not None and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("grant_types")
    @classmethod
    def _grants(cls, value: list[str]) -> list[str]:
        """authorization_code (refresh_token optional), or client_credentials alone."""
        value = list(dict.fromkeys(value))
        if MACHINE_GRANT in value and value != [MACHINE_GRANT]:
            raise ValueError("client_credentials is registered alone (a separate client)")
        if MACHINE_GRANT not in value and "authorization_code" not in value:
            raise ValueError("authorization_code is required")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientMetadata:
        """Redirect URIs for sign-in clients only; keys exactly for private_key_jwt."""
        machine = self.grant_types == [MACHINE_GRANT]
        if machine and self.redirect_uris:
            raise ValueError("grant_types client_credentials: such a client has no redirect_uris")
        if not machine and not self.redirect_uris:
            raise ValueError("redirect_uris: at least one is required")
        if machine and self.token_endpoint_auth_method == "none":  # noqa: S105 - a method name
            # OAuth 2.1 4.2: only confidential clients use client_credentials
            raise ValueError(
                "grant_types client_credentials: the client must authenticate (not 'none')"
            )
        if self.token_endpoint_auth_method == rfc7523.METHOD:
            if (self.jwks is None) == (self.jwks_uri is None):  # RFC 7591 2: not both
                raise ValueError("private_key_jwt needs exactly one of jwks and jwks_uri")
        elif self.jwks is not None or self.jwks_uri is not None:
            raise ValueError("jwks and jwks_uri are only for private_key_jwt")
        if self.jwks is not None:
            rfc7523.public_keys(self.jwks)
        if self.jwks_uri is not None:
            parts = urlsplit(self.jwks_uri)
            if parts.scheme not in {"https", "http"} or not parts.hostname or parts.fragment:
                raise ValueError("jwks_uri must be an absolute https URL")
        return self

    @field_validator(*TEXT_FIELDS)
    @classmethod
    def _nothing_invisible(cls, value: Any) -> Any:
        """No field hides or reorders text: the consent page shows them (name spoofing)."""
        items = value if isinstance(value, list) else [value]
        found = [c for item in items if isinstance(item, str) for c in invisible_characters(item)]
        if found:
            names = ", ".join(dict.fromkeys(found))
            raise ValueError(f"invisible or text-direction characters are not allowed ({names})")
        return value


def _describe(exc: ValidationError) -> str:
    """The first validation problem, as a short sentence."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if not where:  # a rule across fields: its message names them
        return str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {first['msg']}"


def parse(body: bytes, settings: OAuthSettings) -> ClientMetadata:
    """Validated metadata, or InvalidClientMetadata / InvalidRedirectUri (RFC 7591 3.2.2)."""
    try:
        meta = ClientMetadata.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidClientMetadata(_describe(exc)) from None
    for uri in meta.redirect_uris:
        redirect_uris.check_registrable(uri)
    jwks_uri = meta.jwks_uri or ""
    if jwks_uri.startswith("http:") and not settings.cimd_allow_insecure:
        raise InvalidClientMetadata("jwks_uri must be https (http only with --cimd-allow-insecure)")
    if meta.scope is not None:
        if not meta.scope.split():
            raise InvalidClientMetadata("unknown scope: (empty)")
        kept = without_conventional(meta.scope.split(), settings.scopes)
        unknown = [s for s in kept if s not in settings.scopes]
        if unknown:
            raise InvalidClientMetadata(f"unknown scope: {' '.join(unknown)}")
        # only conventional scopes left: as if no scope was registered
        meta = meta.model_copy(update={"scope": " ".join(kept) or None})
    return meta


def new_client(meta: ClientMetadata) -> tuple[Client, dict[str, Any]]:
    """The client row and the registration response (RFC 7591 3.2.1); the secret is shown once."""
    client_id = secrets.token_urlsafe(16)
    issued = now()
    machine = meta.grant_types == [MACHINE_GRANT]
    # a client_credentials client sends nobody anywhere: no redirect URIs, no response types
    registered = meta.model_dump(
        exclude_none=True, exclude={"redirect_uris", "response_types"} if machine else None
    )
    registered["client_id_issued_at"] = issued
    # a secret only for the client_secret_* methods: a public client has none, a
    # private_key_jwt client its keys
    uses_secret = meta.token_endpoint_auth_method.startswith("client_secret_")
    secret = secrets.token_urlsafe(32) if uses_secret else None
    client = Client(
        client_id=client_id,
        secret_hash=token_hash(secret) if secret else None,
        token_endpoint_auth_method=meta.token_endpoint_auth_method,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        scope=meta.scope,
        client_name=meta.client_name,
        registered=registered,
        issued_at=issued,
    )
    response = {"client_id": client_id, **registered}
    if secret:
        response.update(client_secret=secret, client_secret_expires_at=0)
    return client, response


@dataclass(eq=False)
class RegistrationEndpoint:
    """POST /register: open, but rate-limited per source, and unused registrations are bounded."""

    settings: OAuthSettings
    db: Database
    limiter: Limiter
    _: KW_ONLY
    audit: AuditLog = NO_AUDIT

    async def handle(self, request: Request) -> Response:
        """Register a client; 201 with its client_id (and secret for confidential clients)."""
        try:
            wait = await self.limiter.hit(source(request))
            if wait:
                raise TooManyRequests("too many registrations from this address", wait)
            try:
                body = await read_body(request, self.settings.max_body_bytes)
            except BodyTooLarge:
                raise InvalidClientMetadata("the registration request is too large") from None
            meta = parse(body, self.settings)
            self._check_initial_access_token(request, meta)
            client, response = new_client(meta)
            machine = meta.grant_types == [MACHINE_GRANT]
            if machine:  # vouched for by the initial access token: never "unused", kept
                client.authorized_at = client.issued_at
            await self._store(client, limit_unused=not machine)
        except OAuthError as exc:
            return exc.response()
        self.audit.record(
            "client_registered",
            request,
            client_id=client.client_id,
            auth_method=client.token_endpoint_auth_method,
            scope=client.scope,
        )
        return JSONResponse(response, status_code=201, headers=NO_STORE)

    def _check_initial_access_token(self, request: Request, meta: ClientMetadata) -> None:
        """RFC 7591 3: client_credentials clients need the initial access token; a wrong token
        is refused whatever is registered (RFC 6750 3.1)."""
        header = request.headers.get("authorization")
        expected = self.settings.initial_access_token_hash
        if header is None:
            if meta.grant_types != [MACHINE_GRANT]:
                return  # browser clients register openly
            if expected is None:
                raise InvalidClientMetadata(
                    "client_credentials registration is disabled on this server (it needs "
                    "oauth.py --initial-access-token)"
                )
            raise InitialAccessTokenRequired(
                "registering a client_credentials client needs the initial access token "
                "(Authorization: Bearer)"
            )
        scheme, _, token = header.partition(" ")
        given = token_hash(token.strip()) if scheme.lower() == "bearer" else ""
        if expected is None or not hmac.compare_digest(given, expected):
            raise InvalidInitialAccessToken("the initial access token is not valid")

    async def _store(self, client: Client, *, limit_unused: bool = True) -> None:
        """Add the client, unless too many registrations wait for a first use (ServerBusy)."""
        async with self.db.write() as session:
            await self.db.serialize(session, "registrations")  # the bound holds across instances
            unused = await session.scalar(
                select(func.count()).where(Client.authorized_at.is_(None))
            )
            if limit_unused and (unused or 0) >= self.settings.max_unused_clients:
                raise ServerBusy("too many registrations are waiting for a first use", 3600)
            session.add(client)

"""RFC 7591 dynamic client registration: every field validated, secrets stored hashed."""

from __future__ import annotations

import secrets
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.common.ratelimit import Limiter
from secure_mcp.oauth import redirect_uris
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.display import invisible_characters
from secure_mcp.oauth.errors import NO_STORE, InvalidClientMetadata, OAuthError
from secure_mcp.oauth.forms import BodyTooLarge, read_body
from secure_mcp.oauth.limits import ServerBusy, TooManyRequests, source
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.scopes import without_conventional
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, now, token_hash

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
GrantType = Literal["authorization_code", "refresh_token"]
ShortText = Field(default=None, max_length=200)
# Every text field but redirect_uris (which must be ASCII: redirect_uris.check_registrable).
TEXT_FIELDS = (
    "client_name", "scope", "client_uri", "logo_uri", "tos_uri", "policy_uri", "contacts",
    "software_id", "software_version",
)  # fmt: skip


class ClientMetadata(BaseModel):
    """The registration request (RFC 7591 2); unknown fields are ignored (RFC 7591 2)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    redirect_uris: list[str] = Field(min_length=1, max_length=10)
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"  # noqa: S105 - RFC 7591 2 default
    grant_types: list[GrantType] = Field(default=["authorization_code"], min_length=1)
    response_types: list[Literal["code"]] = Field(default=["code"], min_length=1)
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
    def _needs_code_grant(cls, value: list[str]) -> list[str]:
        """Only redirect-based clients: authorization_code must be among the grants."""
        if "authorization_code" not in value:
            raise ValueError("authorization_code is required")
        return list(dict.fromkeys(value))

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
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def parse(body: bytes, settings: OAuthSettings) -> ClientMetadata:
    """Validated metadata, or InvalidClientMetadata / InvalidRedirectUri (RFC 7591 3.2.2)."""
    try:
        meta = ClientMetadata.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidClientMetadata(_describe(exc)) from None
    for uri in meta.redirect_uris:
        redirect_uris.check_registrable(uri)
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
    registered = meta.model_dump(exclude_none=True)
    registered["client_id_issued_at"] = issued
    public = meta.token_endpoint_auth_method == "none"  # noqa: S105 - a method name
    secret = None if public else secrets.token_urlsafe(32)
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


class RegistrationEndpoint:
    """POST /register: open, but rate-limited per source, and unused registrations are bounded."""

    def __init__(
        self,
        settings: OAuthSettings,
        db: Database,
        limiter: Limiter,
        *,
        audit: AuditLog = NO_AUDIT,
    ) -> None:
        self.settings = settings
        self.db = db
        self.limiter = limiter
        self.audit = audit

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
            client, response = new_client(meta)
            await self._store(client)
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

    async def _store(self, client: Client) -> None:
        """Add the client, unless too many registrations wait for a first use (ServerBusy)."""
        async with self.db.write() as session:
            await self.db.serialize(session, "registrations")  # the bound holds across instances
            unused = await session.scalar(
                select(func.count()).where(Client.authorized_at.is_(None))
            )
            if (unused or 0) >= self.settings.max_unused_clients:
                raise ServerBusy("too many registrations are waiting for a first use", 3600)
            session.add(client)

"""RFC 6750 bearer-token gate in front of the MCP endpoint: pure ASGI, closed by default."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Protocol
from urllib.parse import parse_qsl

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from secure_mcp.common.ratelimit import Limiter
from secure_mcp.common.sources import scope_source
from secure_mcp.weather.errors import (
    AuthError,
    InsufficientScopeError,
    InvalidRequestError,
    InvalidTokenError,
    MissingTokenError,
    TooManyFailedTokensError,
)
from secure_mcp.weather.rfc7662 import Admit

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_LENGTH = 4096
ACCESS_KEY = "secure_mcp.access_token"  # the verified AccessToken, left in the ASGI scope


class Verifier(Protocol):
    """What the gate needs: a token checked, `admit` run before any introspection."""

    async def check(self, token: str, admit: Admit | None = None) -> AccessToken:
        """The verified token, or InvalidTokenError / AuthServerUnavailableError."""
        ...


def bearer_token(scope: Scope) -> str:
    """The token of the request's single `Authorization: Bearer` header; AuthError otherwise."""
    raw_query: bytes = scope.get("query_string", b"")
    query = raw_query.decode("latin-1")
    if query and any(
        name == "access_token" for name, _ in parse_qsl(query, keep_blank_values=True)
    ):
        # MCP authorization "Access Token Usage" (MUST NOT be in the URI query); RFC 9700 4.3.2.
        raise InvalidRequestError("Send the access token in the Authorization header only.")
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
    if len(values) > 1:
        raise InvalidRequestError("Send exactly one Authorization header.")
    if not values:
        raise MissingTokenError
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise MissingTokenError  # RFC 6750 3.1: an unsupported scheme is no bearer attempt
    credential: str = token.strip()
    if len(credential) > MAX_TOKEN_LENGTH or not B64TOKEN.fullmatch(credential):
        raise InvalidRequestError("The Authorization header is not a valid Bearer credential.")
    return credential


def challenge(exc: AuthError, resource_metadata: str, scopes: Sequence[str]) -> str:
    """The `WWW-Authenticate` value (RFC 6750 section 3, RFC 9728 section 5.1)."""
    parts = [f'resource_metadata="{resource_metadata}"', f'scope="{" ".join(scopes)}"']
    if exc.error:
        parts += [f'error="{exc.error}"', f'error_description="{exc.description}"']
    return "Bearer " + ", ".join(parts)


def _response_headers(
    exc: AuthError, resource_metadata: str, scopes: Sequence[str]
) -> list[tuple[bytes, bytes]]:
    """Headers of a refusal: `Retry-After` for 429 and 503, else the challenge."""
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if exc.retry_after is not None:
        return [*headers, (b"retry-after", str(exc.retry_after).encode())]
    value = challenge(exc, resource_metadata, scopes)
    return [*headers, (b"www-authenticate", value.encode("latin-1"))]


async def refuse(send: Send, exc: AuthError, resource_metadata: str, scopes: Sequence[str]) -> None:
    """Write the JSON refusal for `exc`."""
    payload = {"error": exc.error} if exc.error else {}
    body = json.dumps({**payload, "error_description": exc.description}).encode()
    headers = _response_headers(exc, resource_metadata, scopes)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BearerAuthMiddleware:
    """Every HTTP path except `public_paths` needs an active token with the required scopes.

    `failures` counts invalid tokens per source (the TCP peer). Once a source has used up its
    allowance, a token that would have to be introspected is answered 429 with `Retry-After`
    instead, until the allowance refills; tokens verified earlier (cached) keep working, so other
    clients behind the same address are not locked out, and malformed ones still get the 401.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        failures: Limiter,
        required_scopes: Sequence[str],
        resource_metadata: str,
        public_paths: Iterable[str],
        challenge_scopes: Sequence[str] | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.failures = failures
        self.required_scopes = tuple(required_scopes)
        # the 401 challenge's `scope`: everything this server's tools need (RFC 9728 5.1)
        self.challenge_scopes = tuple(challenge_scopes or required_scopes)
        self.resource_metadata = resource_metadata
        self.public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (
            scope["type"] == "http" and scope["path"] in self.public_paths
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # no other protocol gets in
            return
        try:
            access = await self._authorize(scope)
        except InsufficientScopeError as exc:
            await refuse(send, exc, self.resource_metadata, self.required_scopes)
            return
        except AuthError as exc:
            await refuse(send, exc, self.resource_metadata, self.challenge_scopes)
            return
        # What the SDK's own authentication middleware would leave for the MCP server and the
        # tools (`get_access_token()`), from this one check.
        user = AuthenticatedUser(access)
        scope[ACCESS_KEY], scope["user"] = access, user
        scope["auth"] = AuthCredentials(access.scopes)
        reset = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(reset)

    async def _authorize(self, scope: Scope) -> AccessToken:
        """Raise the AuthError that refuses this request, or return the verified token."""
        token = bearer_token(scope)

        async def admit() -> None:
            """Before an introspection: refuse it while this source is over its allowance."""
            wait = await self.failures.check(scope_source(scope))
            if wait > 0:
                raise TooManyFailedTokensError(wait)

        try:
            access = await self.verifier.check(token, admit)
        except InvalidTokenError:
            await self.failures.hit(scope_source(scope))  # the source only when needed
            raise
        if not set(self.required_scopes) <= set(access.scopes):
            raise InsufficientScopeError
        return access

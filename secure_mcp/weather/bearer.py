"""The token gate in front of the MCP endpoint: pure ASGI, closed by default.

RFC 6750 bearer tokens, and RFC 9449 DPoP-bound tokens (scheme `DPoP` with a proof) when a
`ResourceProofs` is given: a bound token sent as `Bearer` is refused (no downgrade), and with
`required` every bearer token is.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Receive, Scope, Send

from secure_mcp.common.ratelimit import Limiter
from secure_mcp.common.sources import scope_source
from secure_mcp.weather.dpop import ResourceProofs, bound_key
from secure_mcp.weather.errors import (
    AuthError,
    InsufficientScopeError,
    InvalidTokenError,
    MalformedRequestError,
    MissingTokenError,
    TooManyFailedTokensError,
    UseDpopNonceError,
)
from secure_mcp.weather.rfc7662 import Admit

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MAX_TOKEN_LENGTH = 4096
ACCESS_KEY = "secure_mcp.access_token"  # the verified AccessToken, left in the ASGI scope
SCHEMES_KEY = "secure_mcp.auth_schemes"  # (Schemes, the scheme used), for later refusals
BEARER, DPOP = "Bearer", "DPoP"
DPOP_ERRORS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})


class Verifier(Protocol):
    """What the gate needs: a token checked, `admit` run before any introspection."""

    async def check(self, token: str, admit: Admit | None = None) -> AccessToken:
        """The verified token, or InvalidTokenError / AuthServerUnavailableError."""
        ...


def credentials(scope: Scope, schemes: Iterable[str] = (BEARER,)) -> tuple[str, str]:
    """(scheme, token) of the request's single `Authorization` header; AuthError otherwise.

    `schemes`: those this server accepts (RFC 6750 2.1 `Bearer`, RFC 9449 7.1 `DPoP`).
    """
    raw_query: bytes = scope.get("query_string", b"")
    query = raw_query.decode("latin-1")
    if query and any(
        name == "access_token" for name, _ in parse_qsl(query, keep_blank_values=True)
    ):
        # MCP authorization "Access Token Usage" (MUST NOT be in the URI query); RFC 9700 4.3.2.
        raise MalformedRequestError("Send the access token in the Authorization header only.")
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"authorization"]
    if len(values) > 1:
        raise MalformedRequestError("Send exactly one Authorization header.")
    if not values:
        raise MissingTokenError
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    accepted = {name.lower(): name for name in schemes}
    if scheme.lower() not in accepted:
        raise MissingTokenError  # RFC 6750 3.1: an unsupported scheme is no attempt at ours
    credential: str = token.strip()
    if len(credential) > MAX_TOKEN_LENGTH or not B64TOKEN.fullmatch(credential):
        name = accepted[scheme.lower()]
        raise MalformedRequestError(f"The Authorization header is not a valid {name} credential.")
    return accepted[scheme.lower()], credential


def challenge(
    exc: AuthError | None,
    resource_metadata: str,
    scopes: Sequence[str],
    scheme: str = BEARER,
    algs: Sequence[str] = (),
) -> str:
    """One `WWW-Authenticate` challenge (RFC 6750 3, RFC 9449 7.1, RFC 9728 5.1); the error
    only when `exc` is given and has one."""
    parts = [f'algs="{" ".join(algs)}"'] if algs else []
    parts += [f'resource_metadata="{resource_metadata}"', f'scope="{" ".join(scopes)}"']
    if exc is not None and exc.error:
        parts += [f'error="{exc.error}"', f'error_description="{exc.description}"']
    return f"{scheme} " + ", ".join(parts)


@dataclass(frozen=True)
class Schemes:
    """The challenges this server sends: Bearer unless DPoP is required, DPoP when supported."""

    bearer: bool = True
    dpop_algs: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        """The Authorization schemes of requests this server looks at."""
        return (BEARER, DPOP) if self.dpop_algs else (BEARER,)

    def challenges(
        self, exc: AuthError, resource_metadata: str, scopes: Sequence[str], used: str | None
    ) -> list[str]:
        """One challenge per scheme; the error goes with the scheme the request used (RFC 9449
        7.1), a DPoP-only error always with DPoP."""
        dpop_error = exc.error in DPOP_ERRORS or (used == BEARER and not self.bearer)
        on_dpop = used == DPOP or dpop_error
        found = []
        if self.bearer:
            bearer_exc = None if on_dpop else exc
            found.append(challenge(bearer_exc, resource_metadata, scopes, BEARER))
        if self.dpop_algs:
            dpop_exc = exc if on_dpop or not self.bearer else None
            found.append(challenge(dpop_exc, resource_metadata, scopes, DPOP, self.dpop_algs))
        return found


def _response_headers(
    exc: AuthError, resource_metadata: str, scopes: Sequence[str], scope: Scope | None
) -> list[tuple[bytes, bytes]]:
    """Headers of a refusal: `Retry-After` for 429 and 503, else the challenges (and a nonce)."""
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if exc.retry_after is not None:
        return [*headers, (b"retry-after", str(exc.retry_after).encode())]
    schemes, used = (scope or {}).get(SCHEMES_KEY, (Schemes(), None))
    for value in schemes.challenges(exc, resource_metadata, scopes, used):
        headers.append((b"www-authenticate", value.encode("latin-1")))
    if isinstance(exc, UseDpopNonceError):  # RFC 9449 9
        headers.append((b"dpop-nonce", exc.nonce.encode("ascii")))
    return headers


async def refuse(
    send: Send,
    exc: AuthError,
    resource_metadata: str,
    scopes: Sequence[str],
    scope: Scope | None = None,
) -> None:
    """Write the JSON refusal for `exc` (the challenges as `scope`'s gate left them)."""
    payload = {"error": exc.error} if exc.error else {}
    body = json.dumps({**payload, "error_description": exc.description}).encode()
    headers = _response_headers(exc, resource_metadata, scopes, scope)
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
        dpop: ResourceProofs | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.failures = failures
        self.required_scopes = tuple(required_scopes)
        # the 401 challenge's `scope`: everything this server's tools need (RFC 9728 5.1)
        self.challenge_scopes = tuple(challenge_scopes or required_scopes)
        self.resource_metadata = resource_metadata
        self.public_paths = frozenset(public_paths)
        self.dpop = dpop
        self.schemes = Schemes(
            bearer=dpop is None or not dpop.required,
            dpop_algs=dpop.algorithms if dpop is not None else (),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (
            scope["type"] == "http" and scope["path"] in self.public_paths
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1008})  # no other protocol gets in
            return
        scope[SCHEMES_KEY] = (self.schemes, None)
        try:
            access = await self._authorize(scope)
        except InsufficientScopeError as exc:
            await refuse(send, exc, self.resource_metadata, self.required_scopes, scope)
            return
        except AuthError as exc:
            await refuse(send, exc, self.resource_metadata, self.challenge_scopes, scope)
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
        scheme, token = credentials(scope, self.schemes.accepted)
        scope[SCHEMES_KEY] = (self.schemes, scheme)
        proof = None
        if scheme == DPOP:
            assert self.dpop is not None  # DPoP is accepted only with a policy
            proof = await self.dpop.check(scope, token)  # before the token: forgeries cost 0
        elif not self.schemes.bearer:
            raise InvalidTokenError("This server accepts DPoP-bound access tokens only.")

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
        jkt = bound_key(access)
        if proof is None and jkt is not None:  # RFC 9449 7.2: no downgrade to Bearer
            raise InvalidTokenError("This access token is DPoP-bound: send it with a DPoP proof.")
        if proof is not None and (jkt is None or not hmac.compare_digest(jkt, proof.jkt)):
            # RFC 9449 7.1: the token's key must be the proof's
            raise InvalidTokenError("The access token is not bound to the DPoP proof's key.")
        if not set(self.required_scopes) <= set(access.scopes):
            raise InsufficientScopeError
        return access

"""The token check: a JWT (RFC 9068) is checked here, any other token by introspection (RFC 7662).

The two are told apart by shape: a JWT is three base64url parts joined by dots, oauth.py's opaque
tokens have a prefix and no dot (`common/token_format.py`). A JWT that verifies is remembered
by the SHA-256 of its bytes until it expires (at most `ttl`), so the signature is checked once
per token, not once per request; the cache is emptied when a key leaves the JWKS.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from mcp.server.auth.provider import AccessToken

from secure_mcp.common import token_format
from secure_mcp.weather.errors import AuthServerUnavailableError, InvalidTokenError
from secure_mcp.weather.rfc7662 import (
    VERDICT,
    Admit,
    IntrospectionVerifier,
    TokenInfoCache,
    token_key,
)
from secure_mcp.weather.rfc9068 import Jwks, JwtValidator, NoJwksError

Clock = Callable[[], float]


class AccessTokenVerifier:
    """Checks bearer tokens of both formats (an SDK `TokenVerifier`).

    `introspect_jwt`: a valid JWT is also introspected (through the introspection cache), for
    deployments that need revocation to take effect before the token expires.
    """

    def __init__(
        self,
        introspection: IntrospectionVerifier,
        *,
        jwks_ttl: float = 300.0,
        introspect_jwt: bool = False,
        any_format: bool = False,
        allow_insecure_http: bool = False,
        cache_size: int = 10_000,
        clock: Clock = time.time,
    ) -> None:
        self.introspection = introspection
        self.resource = introspection.resource
        self.introspect_jwt = introspect_jwt
        self.any_format = any_format  # another AS: a JWT we cannot check is introspected
        self.cache = TokenInfoCache(jwks_ttl, cache_size, clock)
        self.jwks = Jwks(
            introspection.discovery,
            introspection.http,
            ttl=jwks_ttl,
            allow_insecure_http=allow_insecure_http,
            clock=clock,
            on_change=self.cache.clear,
        )
        self.jwt = JwtValidator(
            issuer=introspection.issuer, resource=self.resource, jwks=self.jwks, clock=clock
        )

    async def aclose(self) -> None:
        """Stop background work and close the connection pool."""
        await self.jwks.aclose()
        await self.introspection.aclose()

    async def check(self, token: str, admit: Admit | None = None) -> AccessToken:
        """The verified token, or InvalidTokenError / AuthServerUnavailableError.

        `admit` runs just before a token would be introspected and may raise to refuse that.
        """
        if not token_format.looks_like_jwt(token):
            return await self.introspection.check(token, admit)  # prefix and checksum first
        key = token_key(token)
        grant = self.cache.get(key)
        if grant is None:
            try:
                grant = await self.jwt.validate(token)
            except NoJwksError:
                if not self.any_format:
                    raise
                return await self.introspection.lookup(token, admit)  # its AS decides
            self.cache.put(key, grant)
        if self.introspect_jwt:
            return await self.introspection.lookup(token, admit)  # revoked? the AS knows
        access = grant.access_token(token, self.resource)
        VERDICT.set((key, access))
        return access

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's second check: free after `check` ran for this request; never fails open."""
        seen = VERDICT.get()
        if seen is not None and hmac.compare_digest(seen[0], token_key(token)):
            return seen[1]
        try:
            return await self.check(token)
        except (InvalidTokenError, AuthServerUnavailableError):
            return None

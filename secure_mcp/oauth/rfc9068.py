"""RFC 9068 JWT access tokens: signed with the current key, published at `jwks_uri` (RFC 7517)."""

from __future__ import annotations

import secrets
from typing import Any

from joserfc import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.oauth.signing_keys import ALGORITHM, SigningKeys

MEDIA_TYPE = "at+jwt"  # RFC 9068 2.1: `typ` of the JWS header


class JwtSigner:
    """Makes access tokens for one issuer with the keys of `keys`."""

    def __init__(self, issuer: str, keys: SigningKeys) -> None:
        self.issuer = issuer
        self.keys = keys

    def access_token(
        self,
        *,
        audience: str,
        client_id: str,
        subject: str,
        scope: str,
        issued: int,
        ttl: int,
        jkt: str | None = None,
    ) -> str:
        """A signed JWT with exactly the RFC 9068 2.2 claims this server issues."""
        kid, key = self.keys.current()
        header = {"alg": ALGORITHM, "typ": MEDIA_TYPE, "kid": kid}  # RFC 9068 2.1
        claims: dict[str, Any] = {
            "iss": self.issuer,  # byte for byte as published (RFC 8414 3.3)
            "aud": audience,  # the canonical resource (RFC 8707, RFC 9068 3)
            "exp": issued + ttl,
            "iat": issued,
            "jti": secrets.token_urlsafe(32),
            "client_id": client_id,
            "sub": subject,
            "scope": scope,
        }
        if jkt is not None:  # RFC 9449 6.1: bound to the DPoP key with this thumbprint
            claims["cnf"] = {"jkt": jkt}
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM])


class JwksEndpoint:
    """GET /jwks: the public keys (RFC 7517 5), cacheable for `max_age` seconds."""

    def __init__(self, keys: SigningKeys, max_age: int) -> None:
        self.keys = keys
        self.cache_control = f"public, max-age={max_age}"

    async def handle(self, request: Request) -> Response:
        """The JWK Set as `application/jwk-set+json` (RFC 7517 8.5.1)."""
        return JSONResponse(
            self.keys.jwks(),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": self.cache_control},
        )

"""RFC 9068 JWT access tokens checked here, without the authorization server: JWKS and claims.

The keys come from the issuer's `jwks_uri` (RFC 8414 2, RFC 7517), fetched on the first JWT,
refreshed in the background once they are `ttl` seconds old, and fetched again at once for an
unknown `kid` (at most once per `refetch_interval`, so tokens with made-up key ids cost the
authorization server one request per interval at most). While the authorization server is
down, the keys already fetched keep working: valid JWTs are still accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import httpx2
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey

from secure_mcp.common.uris import insecure_http
from secure_mcp.weather.discovery import Discovery, MissingEndpointError
from secure_mcp.weather.errors import AuthServerUnavailableError, InvalidTokenError
from secure_mcp.weather.rfc7662 import TokenInfo, canonical_audiences, confirmation_key

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
PublicKey = ECKey | OKPKey
# Asymmetric algorithms only: never "none", never an HMAC keyed with a public key (RFC 8725 3.1).
ALGORITHMS: dict[str, tuple[str, str]] = {"ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}
MEDIA_TYPES = frozenset({"at+jwt", "application/at+jwt"})  # RFC 9068 4: `typ`, either form
CLOCK_SKEW = 5  # seconds allowed between our clock and the issuer's (exp, nbf, iat)
REQUIRED_TEXT = ("sub", "client_id", "jti")  # RFC 9068 2.2 (iss, aud, exp, iat checked apart)
PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "OKP": ("kty", "crv", "x")}


class NoJwksError(InvalidTokenError):
    """The authorization server publishes no `jwks_uri`: its JWTs cannot be checked here."""


def _date(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 2) as a number; None when absent or not a number."""
    value = claims.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


@dataclass(frozen=True)
class JwksKey:
    """One public key of the JWKS: the key, its type and curve, and its `alg` member if any."""

    key: PublicKey
    kind: tuple[str, str]
    alg: Any

    def verifies(self, alg: str) -> bool:
        """True when this key is for `alg` (RFC 7517 4.4 `alg`, and the key type and curve)."""
        return ALGORITHMS[alg] == self.kind and self.alg in {None, alg}


def public_key(jwk: Mapping[str, Any]) -> tuple[str, JwksKey] | None:
    """(kid, key) for a usable public signing key of the JWKS; None for any other entry."""
    kid, kty, crv = jwk.get("kid"), jwk.get("kty"), jwk.get("crv")
    if not isinstance(kid, str) or not kid or jwk.get("use", "sig") != "sig":
        return None
    kind = (str(kty), str(crv))
    if kind not in ALGORITHMS.values():  # an "oct" (symmetric) key is never used
        return None
    members = {name: jwk.get(name) for name in PUBLIC_MEMBERS[kind[0]]}  # never "d"
    if not all(isinstance(value, str) for value in members.values()):
        return None
    try:
        key: PublicKey = (ECKey if kty == "EC" else OKPKey).import_key(cast(Any, members))
    except (JoseError, ValueError, TypeError):
        return None
    return kid, JwksKey(key, kind, jwk.get("alg"))


def _seen(done: asyncio.Future[Any]) -> None:
    """Mark a shared fetch's error as retrieved (every waiter got it re-raised)."""
    with contextlib.suppress(asyncio.CancelledError):
        done.exception()


class Jwks:
    """The issuer's public keys by `kid`."""

    def __init__(
        self,
        discovery: Discovery,
        http: httpx2.AsyncClient,
        *,
        ttl: float,
        refetch_interval: float = 10.0,
        allow_insecure_http: bool = False,
        clock: Clock = time.monotonic,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._discovery, self._http, self._clock = discovery, http, clock
        self._ttl, self._refetch_interval = ttl, refetch_interval
        self._allow_insecure = allow_insecure_http
        self._on_change = on_change
        self._keys: dict[str, JwksKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at = -float("inf")
        self._inflight: asyncio.Future[dict[str, JwksKey]] | None = None
        self._background: asyncio.Task[None] | None = None
        self.fetches = 0

    async def key(self, kid: str) -> JwksKey:
        """The key `kid`; InvalidTokenError when the issuer has none such (or no JWKS)."""
        if self._fetched_at is None:
            await self._refresh()  # the very first JWT: without keys nothing can be checked
        elif self._clock() - self._fetched_at >= self._ttl:
            self._refresh_in_background()
        found = self._keys.get(kid)
        if found is None and self._may_fetch():
            with contextlib.suppress(AuthServerUnavailableError):
                await self._refresh()  # a key published since we last looked
            found = self._keys.get(kid)
        if found is None:
            raise InvalidTokenError
        return found

    def _may_fetch(self) -> bool:
        """True when the last attempt was long enough ago (unknown key ids cost little)."""
        return self._clock() - self._attempted_at >= self._refetch_interval

    def _refresh_in_background(self) -> None:
        """Refresh stale keys without making this request wait for the authorization server."""
        if (self._background is None or self._background.done()) and self._may_fetch():
            self._background = asyncio.create_task(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        with contextlib.suppress(AuthServerUnavailableError):
            await self._refresh()

    async def aclose(self) -> None:
        """Stop a background refresh."""
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background

    async def _refresh(self) -> None:
        """Fetch the JWKS, one request however many wait; AuthServerUnavailableError on failure."""
        if self._inflight is None or self._inflight.done():
            self._attempted_at = self._clock()
            self.fetches += 1
            self._inflight = asyncio.ensure_future(self._fetch())
            self._inflight.add_done_callback(_seen)
        keys = await asyncio.shield(self._inflight)
        if self._fetched_at is None or self._keys is not keys:
            changed = self._fetched_at is not None and not set(self._keys) <= set(keys)
            self._keys, self._fetched_at = keys, self._clock()
            if changed:
                self._on_change()  # a key was withdrawn: forget what it verified

    async def _fetch(self) -> dict[str, JwksKey]:
        """GET `jwks_uri` and keep its usable public keys."""
        try:
            uri = await self._discovery.endpoint("jwks_uri")
        except MissingEndpointError:
            raise NoJwksError from None
        if insecure_http(uri) and not self._allow_insecure:
            logger.error("refusing jwks_uri %s: plain http off loopback (RFC 8414 2)", uri)
            raise NoJwksError
        try:
            response = await self._http.get(uri)
            document = response.json() if response.status_code == 200 else None
        except (httpx2.HTTPError, ValueError) as exc:
            self._discovery.forget()
            logger.warning("JWKS unavailable at %s: %r", uri, exc)
            raise AuthServerUnavailableError from exc
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            logger.warning("no JWK Set at %s (HTTP %d)", uri, response.status_code)
            raise AuthServerUnavailableError
        keys = {}
        for entry in entries:
            found = public_key(entry) if isinstance(entry, dict) else None
            if found is not None:
                keys[found[0]] = found[1]
        return keys


class JwtValidator:
    """Checks an RFC 9068 access token: header, signature against the JWKS, then the claims."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        jwks: Jwks,
        clock: Clock = time.time,
        skew: float = CLOCK_SKEW,
    ) -> None:
        self.issuer, self.resource, self.jwks = issuer, resource, jwks
        self._clock, self._skew = clock, skew

    async def validate(self, token: str) -> TokenInfo:
        """The grant of a valid token; InvalidTokenError (or unavailable, before any keys)."""
        header = self._header(token)
        found, alg = await self.jwks.key(header["kid"]), header["alg"]
        if not found.verifies(alg):
            raise InvalidTokenError  # RFC 7517 4.4: the key says which algorithm it is for
        try:
            claims = jwt.decode(token, found.key, algorithms=[alg]).claims
        except (JoseError, ValueError):
            raise InvalidTokenError from None
        return self._token_info(claims)

    def _header(self, token: str) -> dict[str, Any]:
        """The protected header, if it names an allowed algorithm, RFC 9068's type and a kid."""
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, UnicodeError):
            raise InvalidTokenError from None
        typ, kid = header.get("typ"), header.get("kid")
        if header.get("alg") not in ALGORITHMS:  # RFC 8725 2.1, 3.1: our allow-list only
            raise InvalidTokenError
        if not isinstance(typ, str) or typ.lower() not in MEDIA_TYPES:  # RFC 9068 4
            raise InvalidTokenError
        if not isinstance(kid, str) or not kid:
            raise InvalidTokenError
        return dict(header)

    def _token_info(self, claims: Mapping[str, Any]) -> TokenInfo:
        """RFC 9068 4: issuer byte for byte, our audience, exp/nbf/iat with a small skew."""
        now, skew = self._clock(), self._skew
        if claims.get("iss") != self.issuer:
            raise InvalidTokenError
        if self.resource not in canonical_audiences(claims.get("aud")):
            raise InvalidTokenError  # RFC 8707, MCP "Token Audience Binding"
        exp, iat, nbf = _date(claims, "exp"), _date(claims, "iat"), _date(claims, "nbf")
        if exp is None or exp + skew <= now:
            raise InvalidTokenError
        if iat is None or iat - skew > now:
            raise InvalidTokenError
        if "nbf" in claims and (nbf is None or nbf - skew > now):
            raise InvalidTokenError
        if not all(isinstance(claims.get(name), str) and claims[name] for name in REQUIRED_TEXT):
            raise InvalidTokenError
        scope = claims.get("scope")
        if scope is not None and not isinstance(scope, str):
            raise InvalidTokenError
        return TokenInfo(
            client_id=claims["client_id"],
            scopes=tuple((scope or "").split()),
            expires_at=int(exp + skew),  # when this server stops accepting it (the SDK checks too)
            subject=claims["sub"],
            issuer=self.issuer,
            jkt=confirmation_key(claims),  # RFC 9449 6.1
        )

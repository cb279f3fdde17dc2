"""RFC 7662 token introspection: the authorization server decides, a short bounded cache recalls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx2
from mcp.server.auth.provider import AccessToken

from secure_mcp.common.caches import ExpiringLru
from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.common.uris import canonical_resource
from secure_mcp.weather.discovery import Discovery, metadata_url
from secure_mcp.weather.errors import (
    AuthServerUnavailableError,
    IntrospectionRefusedError,
    InvalidTokenError,
)

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Admit = Callable[[], Awaitable[None]]
TOKEN_TYPES = frozenset({"", "bearer", "dpop"})  # introspected `token_type`, lowercased
DPOP_TYPE = "dpop"
__all__ = ["IntrospectionVerifier", "TokenInfo", "TokenInfoCache", "metadata_url", "token_key"]
Reload = Callable[[], "ResourceCredentials | None"]
Observe = Callable[[str], None]  # "cache_hit", or an introspection's outcome (metrics)


@dataclass(frozen=True)
class TokenInfo:
    """What an active token allows (RFC 7662 2.2, RFC 9068 2.2), cached without the token."""

    client_id: str
    scopes: tuple[str, ...]
    expires_at: int | None
    subject: str | None
    issuer: str | None
    jkt: str | None = None  # RFC 9449 6: the DPoP key the token is bound to

    def access_token(self, token: str, resource: str) -> AccessToken:
        """The SDK's view of this grant for `token` (`cnf` in the claims when DPoP-bound)."""
        claims: dict[str, Any] | None = {"iss": self.issuer} if self.issuer else None
        if self.jkt is not None:
            claims = {**(claims or {}), "cnf": {"jkt": self.jkt}}
        return AccessToken.model_construct(  # every field checked when the grant was made
            token=token,
            client_id=self.client_id,
            scopes=list(self.scopes),
            expires_at=self.expires_at,
            resource=resource,
            subject=self.subject,
            claims=claims,
        )


def token_key(token: str) -> str:
    """The cache key of a token: its SHA-256, so no raw token is held in the cache."""
    return hashlib.sha256(token.encode()).hexdigest()


class TokenInfoCache:
    """LRU of TokenInfo: each entry lives at most `ttl` seconds and never past `exp`."""

    def __init__(self, ttl: float, size: int, clock: Clock) -> None:
        self._ttl, self._clock = ttl, clock
        self._entries: ExpiringLru[str, TokenInfo] = ExpiringLru(size, clock)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> TokenInfo | None:
        """The live grant under `key`."""
        return self._entries.get(key)

    def clear(self) -> None:
        """Forget every entry."""
        self._entries.clear()

    def put(self, key: str, grant: TokenInfo) -> None:
        """Remember an active grant (no-op when the TTL is 0)."""
        until = self._clock() + self._ttl
        if grant.expires_at is not None:
            until = min(until, float(grant.expires_at))
        self._entries.put(key, grant, until)  # not kept when `until` is not ahead


def confirmation_key(claims: Mapping[str, Any]) -> str | None:
    """`cnf.jkt` (RFC 9449 6.1, 6.2), None when absent; InvalidTokenError when malformed."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidTokenError  # a confirmation this server cannot check: never ignored
    return jkt


def _string_list(value: Any) -> list[str]:
    """`aud` may be a string or a list of strings (RFC 7662 2.2, RFC 7519 4.1.3)."""
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def canonical_audiences(value: Any) -> set[str]:
    """The `aud` values in canonical form (MCP canonical server URI); malformed ones dropped."""
    found: set[str] = set()
    for audience in _string_list(value):
        with contextlib.suppress(ValueError):
            found.add(canonical_resource(audience))
    return found


def basic_auth(credentials: ResourceCredentials) -> httpx2.BasicAuth:
    """HTTP Basic with client_id and secret form-urlencoded first (RFC 6749 2.3.1, RFC 7662 2.1)."""
    return httpx2.BasicAuth(
        quote_plus(credentials.client_id, safe=""), quote_plus(credentials.client_secret, safe="")
    )


# The verdict of the current request, so the SDK's second check needs no second lookup.
VERDICT: ContextVar[tuple[str, AccessToken] | None] = ContextVar("weather_verified", default=None)


class IntrospectionVerifier:
    """Checks bearer tokens at the authorization server's RFC 7662 endpoint (a `TokenVerifier`)."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        credentials: ResourceCredentials,
        cache_ttl: float,
        cache_size: int,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        clock: Clock = time.time,
        well_formed: Callable[[str], bool] | None = None,
        reload_credentials: Reload | None = None,
        observe: Observe | None = None,
    ) -> None:
        self.issuer = issuer
        self.resource = canonical_resource(resource)
        self._credentials = credentials
        self._auth = basic_auth(credentials)
        self._reload = reload_credentials
        self._reloading = asyncio.Lock()
        self._refusal_logged = False
        self._well_formed = well_formed
        self.http = httpx2.AsyncClient(transport=transport, timeout=timeout)
        self.discovery = Discovery(issuer, self.http)
        self.cache = TokenInfoCache(cache_ttl, cache_size, clock)
        self._clock = clock
        self._inflight: dict[str, asyncio.Future[TokenInfo]] = {}
        self._observe = observe or (lambda _: None)

    async def aclose(self) -> None:
        """Close the connection pool to the authorization server."""
        await self.http.aclose()

    async def check(self, token: str, admit: Admit | None = None) -> AccessToken:
        """The verified token, or InvalidTokenError / AuthServerUnavailableError.

        `admit` runs just before a token would be introspected (not for a malformed or a cached
        one) and may raise to refuse that instead.
        """
        if self._well_formed is not None and not self._well_formed(token):
            raise InvalidTokenError  # refused locally: garbage costs the authorization server 0
        return await self.lookup(token, admit)

    async def lookup(self, token: str, admit: Admit | None = None) -> AccessToken:
        """`check` without the local format check: the cache, else the authorization server."""
        key = token_key(token)
        grant = self.cache.get(key)
        if grant is None:
            if admit is not None:
                await admit()
            grant = await self._shared_lookup(key, token)
        else:
            self._observe("cache_hit")
        access = grant.access_token(token, self.resource)
        VERDICT.set((key, access))
        return access

    async def _shared_lookup(self, key: str, token: str) -> TokenInfo:
        """Concurrent checks of one uncached token share a single introspection request."""
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key, token))
            self._inflight[key] = pending
            pending.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(pending)

    def _settled(self, key: str, done: asyncio.Future[TokenInfo]) -> None:
        """Forget a finished lookup; mark its error as seen (every waiter got it re-raised)."""
        self._inflight.pop(key, None)
        with contextlib.suppress(asyncio.CancelledError):
            done.exception()

    async def _lookup(self, key: str, token: str) -> TokenInfo:
        """Introspect, check the claims and remember an active grant."""
        try:
            grant = self._token_info(await self._introspect(token))
        except InvalidTokenError:
            self._observe("inactive")
            raise
        except AuthServerUnavailableError:
            self._observe("unavailable")
            raise
        self._observe("active")
        self.cache.put(key, grant)
        return grant

    async def verify_token(self, token: str) -> AccessToken | None:
        """The SDK's second check: free after `check` ran for this request; never fails open."""
        key = token_key(token)
        seen = VERDICT.get()
        if seen is not None and hmac.compare_digest(seen[0], key):
            return seen[1]
        try:
            return await self.check(token)
        except (InvalidTokenError, AuthServerUnavailableError):
            return None

    async def _post(self, endpoint: str, token: str) -> tuple[httpx2.Response, object]:
        """One introspection request; returns the answer and the credentials it went with."""
        used = self._credentials
        data = {"token": token, "token_type_hint": "access_token"}
        try:
            response = await self.http.post(endpoint, data=data, auth=self._auth)
        except httpx2.HTTPError as exc:
            self.discovery.forget()  # rediscover: the server may come back elsewhere
            logger.warning("introspection request failed: %r", exc)
            raise AuthServerUnavailableError from exc
        return response, used

    async def _credentials_changed(self, refused: object) -> bool:
        """The credentials were refused: read them again (one reader at a time).

        oauth.py writes new ones when its data folder was reset; True when there are other
        credentials to try now (read by this call or by a concurrent one).
        """
        async with self._reloading:
            if self._credentials is not refused:
                return True  # another request read them meanwhile
            fresh = self._reload() if self._reload is not None else None
            if fresh is None or fresh == self._credentials:
                return False
            logger.warning(
                "the authorization server refused the introspection credentials of %s; read "
                "them again: now introspecting as %s",
                self._credentials.client_id,
                fresh.client_id,
            )
            self._credentials, self._auth = fresh, basic_auth(fresh)
            return True

    async def _introspect(self, token: str) -> Mapping[str, Any]:
        """POST the token (RFC 7662 2.1), authenticated as this resource server."""
        endpoint = await self.discovery.endpoint("introspection_endpoint")
        response, used = await self._post(endpoint, token)
        if response.status_code in {401, 403} and await self._credentials_changed(used):
            response, used = await self._post(endpoint, token)
        if response.status_code in {401, 403}:
            if not self._refusal_logged:  # once, until the credentials work again
                logger.error(
                    "the authorization server refuses the introspection credentials of %s; "
                    "tokens cannot be checked (503) until it accepts them: start oauth.py with "
                    "this server's data folder, or set INTROSPECTION_CLIENT_ID/SECRET",
                    self._credentials.client_id,
                )
                self._refusal_logged = True
            raise IntrospectionRefusedError
        self._refusal_logged = False
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            logger.warning("introspection gave HTTP %d, no JSON object", response.status_code)
            raise AuthServerUnavailableError
        return body

    def _token_info(self, claims: Mapping[str, Any]) -> TokenInfo:
        """Accept only an active Bearer token for this resource from our issuer (else invalid)."""
        now = self._clock()
        if claims.get("active") is not True:  # RFC 7662 section 2.2
            raise InvalidTokenError
        token_type = str(claims.get("token_type") or "").lower()
        jkt = confirmation_key(claims)
        if token_type not in TOKEN_TYPES or (token_type == DPOP_TYPE and jkt is None):
            raise InvalidTokenError  # RFC 9449 6.2: a DPoP token names its key
        issuer = claims.get("iss")
        if issuer is not None and issuer != self.issuer:
            raise InvalidTokenError
        if self.resource not in canonical_audiences(claims.get("aud")):
            # RFC 8707 / MCP authorization "Token Audience Binding": only tokens for this server.
            raise InvalidTokenError
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if exp is not None and (not isinstance(exp, int | float) or exp <= now):
            raise InvalidTokenError
        if isinstance(nbf, int | float) and nbf > now:
            raise InvalidTokenError
        scope, client_id, subject = claims.get("scope"), claims.get("client_id"), claims.get("sub")
        return TokenInfo(
            client_id=client_id if isinstance(client_id, str) else "",
            scopes=tuple(scope.split()) if isinstance(scope, str) else (),
            expires_at=int(exp) if exp is not None else None,
            subject=subject if isinstance(subject, str) else None,
            issuer=issuer if isinstance(issuer, str) else None,
            jkt=jkt,
        )

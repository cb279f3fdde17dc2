"""RFC 7523 2.2 client authentication with a signed JWT (private_key_jwt), RFC 7523 3 checks.

A client registers its public keys, inline (`jwks`) or by URL (`jwks_uri`, fetched with the same
SSRF guards as client ID metadata documents), and authenticates at the token and revocation
endpoints with a short-lived JWT it signs: `iss` = `sub` = its client_id, `aud` = our issuer or
token endpoint, an `exp` at most a few minutes ahead, and a `jti` used once only (kept in the
database until the assertion expires, so every instance on a shared database agrees).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from sqlalchemy.exc import IntegrityError

from secure_mcp.common.caches import ExpiringLru
from secure_mcp.oauth.cimd_fetch import JSON_TYPE, Fetcher, FetchError, FetchSeams
from secure_mcp.oauth.errors import InvalidClient
from secure_mcp.oauth.models import Client, UsedAssertion
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, now

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 2.2
METHOD = "private_key_jwt"
# Asymmetric algorithms only: never "none", never HMAC (RFC 8725 3.1, 3.2). kty and curve.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "Ed25519": ("OKP", "Ed25519"),  # RFC 9864 (EdDSA is deprecated there)
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}
KEY_CLASSES: dict[str, type[ECKey] | type[OKPKey] | type[RSAKey]] = {
    "EC": ECKey,
    "OKP": OKPKey,
    "RSA": RSAKey,
}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048
MAX_KEYS = 10
MAX_LIFETIME = 300  # seconds an assertion may still be valid for when it arrives
CLOCK_SKEW = 30  # seconds allowed between the client's clock and ours
MAX_ASSERTION_CHARS = 8192
MAX_JTI_CHARS = 256
JWKS_TYPES = (JSON_TYPE, "application/jwk-set+json")  # RFC 7517 8.5.1
JWKS_MAX_BYTES = 32 * 1024
JWKS_TTL = 300.0  # seconds a fetched key set is used before it is fetched again
JWKS_REFETCH = 30.0  # an unknown kid fetches the set again, at most this often
JWKS_CACHE_ENTRIES = 256


@dataclass(frozen=True)
class PublicKey:
    """One usable public key of a client's JWK Set."""

    kid: str | None
    kind: tuple[str, str | None]
    alg: str | None
    key: ECKey | OKPKey | RSAKey

    def verifies(self, alg: str) -> bool:
        """True when this key may check a signature made with `alg` (RFC 7517 4.4)."""
        return ALGORITHMS[alg] == self.kind and self.alg in {None, alg}


def _public_key(jwk: Any) -> PublicKey:
    """A public signing key of a JWK Set, or ValueError saying why it is refused."""
    if not isinstance(jwk, dict):
        raise ValueError("every key must be a JSON object")
    if PRIVATE_MEMBERS & set(jwk):  # a private or symmetric key must never be published
        raise ValueError("a key has private or symmetric members; publish public keys only")
    kty = jwk.get("kty")
    if kty not in PUBLIC_MEMBERS or jwk.get("use", "sig") != "sig":
        raise ValueError("keys must be EC, OKP or RSA signing keys")
    members = {name: jwk.get(name) for name in PUBLIC_MEMBERS[kty]}
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if not all(isinstance(v, str) for v in members.values()) or not isinstance(kid, str | None):
        raise ValueError("a key is malformed")
    if alg is not None and alg not in ALGORITHMS:
        raise ValueError(
            f"key algorithm {alg!r} is not allowed; use one of {', '.join(ALGORITHMS)}"
        )
    kind = (str(kty), None if kty == "RSA" else str(members["crv"]))
    if kind not in ALGORITHMS.values():
        raise ValueError(f"curve {kind[1]} is not supported")
    if kty == "RSA" and len(str(members["n"]).rstrip("=")) * 6 < MIN_RSA_BITS:  # base64url
        raise ValueError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    try:
        key = KEY_CLASSES[str(kty)].import_key(cast(Any, members))
    except (JoseError, ValueError, TypeError):
        raise ValueError("a key is malformed") from None
    return PublicKey(kid, kind, alg, key)


def public_keys(jwks: Any) -> list[PublicKey]:
    """The keys of a JWK Set (RFC 7517 5); ValueError for anything unusable or private."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise ValueError(f"jwks must be a JWK Set with 1 to {MAX_KEYS} keys")
    found = [_public_key(jwk) for jwk in keys]
    kids = [k.kid for k in found if k.kid is not None]
    if len(set(kids)) != len(kids):
        raise ValueError("two keys have the same kid")
    return found


class ClientKeys:
    """A client's keys: registered inline, or fetched from its jwks_uri and cached briefly."""

    def __init__(
        self, settings: OAuthSettings, seams: FetchSeams, max_entries: int = JWKS_CACHE_ENTRIES
    ) -> None:
        self.clock = seams.clock
        self.fetcher = Fetcher(
            allow_insecure=settings.cimd_allow_insecure,
            timeout=settings.cimd_timeout,
            max_bytes=JWKS_MAX_BYTES,
            seams=seams,
            ca_file=settings.cimd_ca_file,
            content_types=JWKS_TYPES,
        )
        # each entry: when it was fetched, and the keys; kept JWKS_TTL at most
        self._cache: ExpiringLru[str, tuple[float, list[PublicKey]]] = ExpiringLru(
            max_entries, seams.clock
        )

    async def keys(self, client: Client, kid: str | None) -> list[PublicKey]:
        """The client's keys; a kid not among the cached ones fetches the set again (bounded)."""
        registered = client.registered
        if "jwks" in registered:
            return public_keys(registered["jwks"])
        uri = str(registered.get("jwks_uri", ""))
        moment = self.clock()
        cached = self._cache.get(uri)
        if cached is not None:
            fetched_at, keys = cached
            known = kid is None or any(k.kid == kid for k in keys)
            if known or moment - fetched_at < JWKS_REFETCH:
                return keys
        try:
            fetched = await self.fetcher.fetch(uri)
            keys = public_keys(json.loads(fetched.body))
        except (FetchError, ValueError) as exc:
            raise InvalidClient(
                f"the client's jwks_uri is unusable: {exc}", used_basic=False
            ) from None
        self._cache.put(uri, (moment, keys), moment + JWKS_TTL)
        return keys


def unverified_subject(assertion: str) -> str:
    """The `sub` of an assertion before its signature is checked: which client to look up."""
    if len(assertion) > MAX_ASSERTION_CHARS or not assertion.isascii():
        raise InvalidClient("client_assertion is too long or not a JWT", used_basic=False)
    try:
        claims = json.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):
        raise InvalidClient("client_assertion is not a JWT", used_basic=False) from None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub:
        raise InvalidClient("client_assertion has no sub", used_basic=False)
    return sub


def header(assertion: str) -> tuple[str, str | None]:
    """The assertion's alg (allowed ones only: no none, no HMAC) and kid."""
    try:
        header = jws.extract_compact(assertion.encode("ascii")).protected
    except (JoseError, ValueError):
        raise InvalidClient("client_assertion is not a JWT", used_basic=False) from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:  # RFC 8725 3.1: "none" and HS* are refused, whatever the key
        raise InvalidClient(f"client_assertion alg {alg!r} is not allowed", used_basic=False)
    if kid is not None and not isinstance(kid, str):
        raise InvalidClient("client_assertion kid is malformed", used_basic=False)
    return str(alg), kid


def _signed_claims(assertion: str, alg: str, keys: list[PublicKey]) -> dict[str, Any]:
    """The claims, once a registered key of the right type verifies the signature."""
    for key in keys:
        if key.verifies(alg):
            try:
                return dict(jwt.decode(assertion, key.key, algorithms=[alg]).claims)
            except (JoseError, ValueError):
                continue
    raise InvalidClient("client_assertion is not signed by a registered key", used_basic=False)


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if value is not None:
        raise InvalidClient(f"client_assertion {name} is not a number", used_basic=False)
    return None


def check_claims(claims: Mapping[str, Any], client_id: str, audiences: set[str]) -> tuple[str, int]:
    """RFC 7523 3 items 1-7 for a client assertion; returns its jti and expiry."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:  # 3.1, 3.2 (2.2)
        raise InvalidClient("client_assertion iss and sub must be the client_id", used_basic=False)
    aud = claims.get("aud")
    named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(isinstance(a, str) and a in audiences for a in named):  # 3.3
        raise InvalidClient("client_assertion aud is not this server", used_basic=False)
    moment = now()
    exp = _number(claims, "exp")
    if exp is None or exp <= moment - CLOCK_SKEW:  # 3.4
        raise InvalidClient("client_assertion has expired (or has no exp)", used_basic=False)
    if exp > moment + MAX_LIFETIME + CLOCK_SKEW:
        raise InvalidClient(
            f"client_assertion is valid too long: exp at most {MAX_LIFETIME} s ahead",
            used_basic=False,
        )
    for name in ("nbf", "iat"):  # 3.5, 3.6
        value = _number(claims, name)
        if value is not None and value > moment + CLOCK_SKEW:
            raise InvalidClient(f"client_assertion {name} is in the future", used_basic=False)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:  # 3.7
        raise InvalidClient("client_assertion needs a jti", used_basic=False)
    return jti, int(exp) + CLOCK_SKEW


async def remember_jti(db: Database, client_id: str, jti: str, until: int) -> None:
    """Record a jti once; a second use is InvalidClient (RFC 7523 3.7), on every instance."""
    key = hashlib.sha256(f"{client_id}\n{jti}".encode()).hexdigest()
    try:
        async with db.write() as session:  # the primary key refuses a second row, anywhere
            session.add(UsedAssertion(jti_hash=key, expires_at=until))
    except IntegrityError:
        raise InvalidClient("client_assertion was already used", used_basic=False) from None


class Assertions:
    """Verifies client assertions for this server: its audiences, the clients' keys, the jtis."""

    def __init__(
        self, settings: OAuthSettings, db: Database, seams: FetchSeams | None = None
    ) -> None:
        self.db = db
        self.keys = ClientKeys(settings, seams or FetchSeams())
        issuer = settings.issuer
        # RFC 7523 3.3: the issuer (7523bis) or the token endpoint; a path-less issuer is also
        # accepted with the one "/" URL libraries add
        self.audiences = {issuer, settings.endpoint("/token")}
        if not issuer.rstrip("/").partition("://")[2].count("/"):
            self.audiences.add(issuer.rstrip("/") + "/")

    async def verify(self, client: Client, assertion: str) -> None:
        """Authenticate `client` by `assertion`, or InvalidClient saying what is wrong."""
        alg, kid = header(assertion)
        keys = await self.keys.keys(client, kid)
        if kid is not None:
            keys = [k for k in keys if k.kid == kid]
        claims = _signed_claims(assertion, alg, keys)
        jti, until = check_claims(claims, client.client_id, self.audiences)
        await remember_jti(self.db, client.client_id, jti, until)

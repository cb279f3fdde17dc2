"""RFC 9449 DPoP: proofs made and checked, key thumbprints (RFC 7638), token hashes, nonces.

Shared by the three programs: oauth.py checks proofs at its token endpoint, weather.py at the
MCP endpoint, client.py makes them. All JOSE work is joserfc's; this module only applies the
rules of RFC 9449 section 4.3 around it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, thumbprint
from joserfc.jws import JWSRegistry

# Asymmetric only (RFC 9449 4.3 step 5: never "none", never a MAC); the key type each needs.
# Not EdDSA: RFC 9864 deprecates that name (joserfc warns), and no MCP client is known to use it.
KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
ALGORITHMS = tuple(KEY_TYPES)
CLIENT_ALGORITHM = "ES256"  # what client.py signs with
MEDIA_TYPE = "dpop+jwt"  # RFC 9449 4.2: `typ` of the proof
MAX_AGE = 60  # seconds: a proof's `iat` may be this old (RFC 9449 11.1), the replay window
CLOCK_SKEW = 5  # seconds: a proof's `iat` may be this far ahead of our clock
MAX_PROOF_LENGTH = 8192  # an RSA-4096 proof is about 1.5 KB
MAX_JTI_LENGTH = 256
MIN_RSA_BITS = 2048
PUBLIC_MEMBERS = {"EC": ("kty", "crv", "x", "y"), "RSA": ("kty", "e", "n")}
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
NONCE_LIFETIME = 300  # seconds a server nonce stays valid (two slots: 300 to 600)

Clock = Callable[[], float]


class _ProofRegistry(JWSRegistry):
    """joserfc's limits sized for proofs: an RSA `jwk` in the header is over its default 512."""

    max_header_length = 2048
    max_payload_length = 4096


REGISTRY = _ProofRegistry(algorithms=ALGORITHMS, strict_check_header=False)


class InvalidProof(Exception):
    """The proof fails a check of RFC 9449 4.3; `description` says which (no secrets in it)."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class NonceRequired(InvalidProof):
    """RFC 9449 8, 9: the proof lacks the server's current nonce; send `nonce` and retry."""

    error = "use_dpop_nonce"

    def __init__(self, nonce: str) -> None:
        super().__init__("Send a DPoP proof with the server's nonce (DPoP-Nonce)")
        self.nonce = nonce


@dataclass(frozen=True)
class Proof:
    """A checked proof: the key's thumbprint, its `jti` and `iat`."""

    jkt: str
    jti: str
    iat: float

    def replay_key(self) -> str:
        """What the replay cache remembers: the SHA-256 of key and `jti` (RFC 9449 11.1)."""
        return hashlib.sha256(f"{self.jkt}.{self.jti}".encode()).hexdigest()

    def expires_at(self) -> float:
        """Until when a replay of this proof could still pass the `iat` check."""
        return self.iat + MAX_AGE + CLOCK_SKEW


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """`ath`: base64url of the SHA-256 of the token's ASCII bytes (RFC 9449 4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK (`jkt`, RFC 9449 6.1)."""
    return thumbprint(dict(jwk))


def htu_of(url: str) -> str:
    """A URL as compared with `htu`: no query or fragment, scheme and host lowercased, default
    port dropped, empty path as "/" (RFC 9449 4.3 step 9, RFC 3986 6.2.2 and 6.2.3)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    return urlunsplit((scheme, host, parts.path or "/", "", ""))


def one_header(values: Iterable[bytes | str]) -> str | None:
    """The request's single `DPoP` header value; InvalidProof for several (RFC 9449 4.3 step 1)."""
    found = [v.decode("latin-1") if isinstance(v, bytes) else v for v in values]
    if len(found) > 1 or (found and "," in found[0]):
        raise InvalidProof("Send exactly one DPoP proof")
    return found[0].strip() if found else None


def _public_key(header: Mapping[str, Any], alg: str) -> ECKey | RSAKey:
    """The proof's `jwk`: a public key of the type `alg` needs (RFC 9449 4.3 steps 5-7)."""
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidProof("The DPoP proof has no jwk header")
    if PRIVATE_MEMBERS & set(jwk):
        raise InvalidProof("The DPoP proof's jwk must be a public key")
    kty, crv = KEY_TYPES[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise InvalidProof(f"The DPoP proof's jwk is not a key for {alg}")
    members = {name: jwk.get(name) for name in PUBLIC_MEMBERS[kty]}
    if not all(isinstance(value, str) for value in members.values()):
        raise InvalidProof("The DPoP proof's jwk is malformed")
    if kty == "RSA" and len(str(members["n"]).rstrip("=")) * 6 < MIN_RSA_BITS:
        raise InvalidProof(f"The DPoP proof's RSA key is shorter than {MIN_RSA_BITS} bits")
    kind = ECKey if kty == "EC" else RSAKey
    try:
        return kind.import_key(cast(Any, members))
    except (JoseError, ValueError, TypeError):
        raise InvalidProof("The DPoP proof's jwk is malformed") from None


def _header(value: str, algorithms: Iterable[str]) -> tuple[dict[str, Any], str]:
    """The protected header and its `alg`, if `typ` and `alg` are acceptable (steps 2, 4, 5)."""
    if len(value) > MAX_PROOF_LENGTH:
        raise InvalidProof("The DPoP proof is too long")
    try:
        header = dict(jws.extract_compact(value.encode("ascii"), registry=REGISTRY).headers())
    except (JoseError, ValueError, UnicodeError):
        raise InvalidProof("The DPoP proof is not a JWS") from None
    if header.get("typ") != MEDIA_TYPE:
        raise InvalidProof(f"The DPoP proof's typ must be {MEDIA_TYPE}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in KEY_TYPES or alg not in set(algorithms):
        raise InvalidProof("The DPoP proof's alg is not one this server accepts")
    return header, alg


def _claims(value: str, key: ECKey | RSAKey, alg: str) -> dict[str, Any]:
    """The verified payload as a JSON object (step 6)."""
    try:
        payload = jws.deserialize_compact(value, key, algorithms=[alg], registry=REGISTRY).payload
        claims = json.loads(payload)
    except (JoseError, ValueError):
        raise InvalidProof("The DPoP proof's signature does not verify") from None
    if not isinstance(claims, dict):
        raise InvalidProof("The DPoP proof's payload is not a JSON object")
    return claims


def check_proof(
    value: str,
    *,
    method: str,
    url: str,
    algorithms: Iterable[str] = ALGORITHMS,
    access_token: str | None = None,
    nonce_ok: Callable[[Any], bool] | None = None,
    new_nonce: Callable[[], str] | None = None,
    clock: Clock = time.time,
) -> Proof:
    """Check a proof for a `method` request to `url` (RFC 9449 4.3); the replay check is the
    caller's (after this, so that only valid proofs fill its cache).

    `access_token`: the token sent with it, which `ath` must hash (RFC 9449 7.1).
    `nonce_ok`/`new_nonce`: the server requires its nonce (RFC 9449 8, 9); NonceRequired else.
    """
    header, alg = _header(value, algorithms)
    key = _public_key(header, alg)
    claims = _claims(value, key, alg)
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidProof("The DPoP proof needs a jti")
    if htm != method:  # RFC 9449 4.3 step 8
        raise InvalidProof("The DPoP proof's htm is not this request's method")
    if not isinstance(htu, str) or htu_of(htu) != htu_of(url):  # step 9
        raise InvalidProof("The DPoP proof's htu is not this request's URL")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not math.isfinite(iat):
        raise InvalidProof("The DPoP proof needs a numeric iat")
    if nonce_ok is not None and new_nonce is not None and not nonce_ok(claims.get("nonce")):
        raise NonceRequired(new_nonce())  # step 10, before iat: a nonce also cures clock skew
    now = clock()
    if not now - MAX_AGE <= iat <= now + CLOCK_SKEW:  # step 11
        raise InvalidProof("The DPoP proof's iat is too old or in the future")
    if access_token is not None:  # step 12
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(
            ath, access_token_hash(access_token)
        ):
            raise InvalidProof("The DPoP proof's ath does not match the access token")
    return Proof(jwk_thumbprint(key.as_dict(private=False)), jti, float(iat))


class Nonces:
    """Server nonces without server state (RFC 9449 8, 9): a time slot and its HMAC.

    Every process holding the same key accepts the others' nonces, so several workers or
    instances need no shared store. A nonce is valid in its slot and the next one.
    """

    def __init__(
        self,
        key: bytes | Callable[[], bytes],
        *,
        lifetime: int = NONCE_LIFETIME,
        clock: Clock = time.time,
    ) -> None:
        self._source = key  # a callable: a key loaded when the server starts
        self._lifetime = lifetime
        self._clock = clock

    def _mac(self, slot: int) -> str:
        secret = self._source() if callable(self._source) else self._source
        key = hashlib.sha256(b"dpop-nonce\0" + secret).digest()
        return b64url(hmac.new(key, str(slot).encode(), hashlib.sha256).digest()[:18])

    def _slot(self) -> int:
        return int(self._clock() // self._lifetime)

    def current(self) -> str:
        """The nonce to hand out now."""
        slot = self._slot()
        return f"{slot}.{self._mac(slot)}"

    def valid(self, nonce: Any) -> bool:
        """True for a nonce this key made in the current or the previous slot."""
        if not isinstance(nonce, str) or nonce.count(".") != 1:
            return False
        slot_text, mac = nonce.split(".")
        if not slot_text.isdigit() or len(slot_text) > 20:
            return False
        slot = int(slot_text)
        return self._slot() - 1 <= slot <= self._slot() and hmac.compare_digest(
            mac, self._mac(slot)
        )


def make_proof(
    key: ECKey,
    method: str,
    url: str,
    *,
    access_token: str | None = None,
    nonce: str | None = None,
    clock: Clock = time.time,
) -> str:
    """A fresh proof for one request (RFC 9449 4.2), signed with the client's key."""
    header = {"typ": MEDIA_TYPE, "alg": CLIENT_ALGORITHM, "jwk": key.as_dict(private=False)}
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(24),
        "htm": method,
        "htu": htu_of(url),
        "iat": int(clock()),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    payload = json.dumps(claims, separators=(",", ":"))
    return jws.serialize_compact(header, payload, key, algorithms=[CLIENT_ALGORITHM])

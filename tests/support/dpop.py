"""DPoP proofs for tests: good ones, and forged ones with any header or claim changed."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from secure_mcp.common.rfc9449 import REGISTRY, access_token_hash, b64url, jwk_thumbprint

DROP = object()  # an override value that removes the member


def new_key() -> ECKey:
    """A fresh P-256 key, as client.py makes."""
    return ECKey.generate_key("P-256")


def jkt_of(key: ECKey) -> str:
    """The key's RFC 7638 thumbprint."""
    return jwk_thumbprint(key.as_dict(private=False))


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not DROP}


def proof(
    key: ECKey,
    method: str,
    url: str,
    *,
    token: str | None = None,
    nonce: str | None = None,
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    sign_with: Any = None,
) -> str:
    """A proof for `method url` (with `ath` for `token`); `header`/`claims` override members."""
    base_claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
    }
    if token is not None:
        base_claims["ath"] = access_token_hash(token)
    if nonce is not None:
        base_claims["nonce"] = nonce
    body = _merged(base_claims, claims or {})
    standard = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    head = _merged(standard, header or {})
    payload = json.dumps(body)
    alg = head.get("alg")
    if alg == "none" or alg not in REGISTRY.algorithms:  # unsigned, or an unknown algorithm
        signature = "" if alg == "none" else b64url(b"not a signature")
        return f"{b64url(json.dumps(head).encode())}.{b64url(payload.encode())}.{signature}"
    signer = sign_with if sign_with is not None else key
    return jws.serialize_compact(head, payload, signer, algorithms=[str(alg)], registry=REGISTRY)


def hmac_proof(method: str, url: str, secret: bytes) -> str:
    """A proof MACed with HS256 (a symmetric algorithm), the `jwk` being the shared key."""
    key = OctKey.import_key(secret)
    head = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.as_dict(private=False)}
    body = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    return jws.serialize_compact(head, json.dumps(body), key, algorithms=["HS256"])

"""Machine clients: an initial access token, keys, signed client assertions, and the `machine`
fixture (the authorization server in process, with that initial access token configured)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from secure_mcp.oauth.rfc7523 import ASSERTION_TYPE
from tests.support.oauth_harness import Harness, running_harness

INITIAL_ACCESS_TOKEN = "iat-" + "x" * 40  # test value, not a secret
INITIAL_ACCESS_TOKEN_HASH = hashlib.sha256(INITIAL_ACCESS_TOKEN.encode()).hexdigest()
BEARER = {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}


def new_key(kid: str = "k1") -> ECKey:
    """A fresh P-256 key pair with `kid`."""
    return ECKey.generate_key("P-256", parameters={"kid": kid})


def jwks(*keys: ECKey) -> dict[str, Any]:
    """The public JWK Set of `keys`."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def assertion(
    key: ECKey,
    client_id: str,
    aud: str | list[str],
    *,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A client assertion (RFC 7523 2.2) signed with `key`; claims override (None drops one)."""
    moment = int(time.time())
    body: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": moment + 60,
        "iat": moment,
        "jti": secrets.token_urlsafe(16),
        **claims,
    }
    kept = {k: v for k, v in body.items() if v is not None}
    head = {"alg": "ES256", "kid": key.kid, **(header or {})}
    return jwt.encode(head, kept, key, algorithms=[head["alg"]])


def assertion_form(signed: str, **extra: str) -> dict[str, str]:
    """A client_credentials token request authenticated by `signed`."""
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
        **extra,
    }


async def register_machine(
    http: httpx2.AsyncClient, headers: dict[str, str] | None = None, **metadata: Any
) -> httpx2.Response:
    """POST /register for a client_credentials client (secret by default) with the token."""
    body = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_basic",
        "client_name": "CI job",
        **metadata,
    }
    return await http.post("/register", json=body, headers=BEARER if headers is None else headers)


@pytest.fixture
async def machine(tmp_path: Path) -> AsyncIterator[Harness]:
    """The authorization server in process, with an initial access token configured."""
    hashed = INITIAL_ACCESS_TOKEN_HASH
    async with running_harness(tmp_path, initial_access_token_hash=hashed) as harness:
        yield harness

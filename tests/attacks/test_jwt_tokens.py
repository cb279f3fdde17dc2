"""Attacks on JWT access tokens against the real programs in JWT mode (`--access-token-format jwt`).

Forged, tampered, re-keyed, mistyped, foreign and expired JWTs: each the exact 401 from weather.py,
none introspected; made-up key ids cost oauth.py at most one JWKS request per 10 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tests.support.flows import Stack, assert_invalid_token, live_auth, mcp_post, run_stack

pytestmark = pytest.mark.process
TTL = 2  # seconds a JWT lives here: the expiry test waits past it and the 5 s skew
INTROSPECTION = '"POST /introspect HTTP/1.1" 200'
JWKS = '"GET /jwks HTTP/1.1" 200'


@pytest.fixture(scope="module")
def jwt_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """oauth.py issuing JWTs (two resources: weather's and a foreign one), and weather.py."""
    tmp_path = tmp_path_factory.mktemp("jwt-attacks")
    env = {"OAUTH_ACCESS_TOKEN_FORMAT": "jwt", "OAUTH_ACCESS_TOKEN_TTL": str(TTL)}
    with run_stack(tmp_path, oauth_env=env, cache_ttl=30) as running:
        yield running
        assert "Traceback" not in running.oauth.program.output()
        assert "Traceback" not in running.weather.program.output()


def part(token: str, index: int) -> dict[str, Any]:
    """A decoded JSON part of a compact JWS."""
    raw = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    return decoded


def b64(data: dict[str, Any]) -> str:
    """base64url JSON, no padding."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def fresh(stack: Stack, resource: str | None = None) -> str:
    """A new access token from the real flow, for weather's resource or `resource`."""
    async with live_auth(stack.oauth, resource or stack.weather.url) as auth:
        _, body = await auth.tokens()
    return str(body["access_token"])


def counts(stack: Stack) -> tuple[int, int]:
    """(introspections, JWKS fetches) oauth.py has answered so far."""
    log = stack.oauth.program.output()
    return log.count(INTROSPECTION), log.count(JWKS)


async def test_forged_and_tampered_jwts_are_refused_locally(jwt_stack: Stack) -> None:
    token = await fresh(jwt_stack)
    assert (await mcp_post(jwt_stack.weather.url, token)).status_code == 200
    header, claims = part(token, 0), part(token, 1)
    signature = token.split(".")[2]
    async with httpx2.AsyncClient() as http:
        jwks = (await http.get(f"{jwt_stack.oauth.issuer}/jwks")).json()
    public = jwks["keys"][0]
    assert "d" not in public
    attacker = ECKey.generate_key("P-256", private=True)
    forged = {
        "widened-scope": f"{b64(header)}.{b64({**claims, 'scope': 'weather:admin'})}.{signature}",
        "other-subject": f"{b64(header)}.{b64({**claims, 'sub': 'admin'})}.{signature}",
        "alg-none": f"{b64({**header, 'alg': 'none'})}.{b64(claims)}.",
        "hs256-with-the-public-key": jwt.encode(
            {**header, "alg": "HS256"},
            claims,
            OctKey.import_key(json.dumps(public).encode()),
            algorithms=["HS256"],
        ),
        "attacker-key-real-kid": jwt.encode(header, claims, attacker),
        "typ-jwt": jwt.encode({**header, "typ": "JWT"}, claims, attacker),
        "longer-lived": f"{b64(header)}.{b64({**claims, 'exp': claims['exp'] + 3600})}.{signature}",
    }
    before = counts(jwt_stack)
    for name, value in forged.items():
        response = await mcp_post(jwt_stack.weather.url, value)
        assert response.status_code == 401, name
        assert_invalid_token(response)
    assert counts(jwt_stack) == before  # no introspection, no JWKS request


async def test_a_jwt_for_another_resource_is_refused(jwt_stack: Stack) -> None:
    foreign = await fresh(jwt_stack, jwt_stack.foreign)
    assert part(foreign, 1)["aud"] == jwt_stack.foreign
    assert_invalid_token(await mcp_post(jwt_stack.weather.url, foreign))


async def test_a_refresh_token_is_no_bearer_token(jwt_stack: Stack) -> None:
    async with live_auth(jwt_stack.oauth, jwt_stack.weather.url) as auth:
        _, body = await auth.tokens()
    assert_invalid_token(await mcp_post(jwt_stack.weather.url, body["refresh_token"]))


async def test_made_up_key_ids_cost_one_jwks_request_per_interval(jwt_stack: Stack) -> None:
    claims = part(await fresh(jwt_stack), 1)
    await mcp_post(jwt_stack.weather.url, await fresh(jwt_stack))  # keys known
    before = counts(jwt_stack)
    for n in range(20):
        key = ECKey.generate_key("P-256", private=True)
        header = {"alg": "ES256", "typ": "at+jwt", "kid": f"made-up-{n}"}
        assert_invalid_token(await mcp_post(jwt_stack.weather.url, jwt.encode(header, claims, key)))
    introspections, fetches = counts(jwt_stack)
    assert introspections == before[0]
    assert fetches - before[1] <= 1


async def test_expiry_is_the_bound_of_revocation(jwt_stack: Stack) -> None:
    async with live_auth(jwt_stack.oauth, jwt_stack.weather.url) as auth:
        flow, body = await auth.tokens()
        revoked, kept = body["access_token"], await fresh(jwt_stack)
        assert (await auth.revoke(flow, body["refresh_token"])).status_code == 200
        assert await auth.introspect(revoked) == {"active": False}  # the AS knows at once
    for token in (revoked, kept):  # checked locally: weather.py cannot know before exp
        assert (await mcp_post(jwt_stack.weather.url, token)).status_code == 200
    await asyncio.sleep(TTL + 5 + 0.5)  # past exp and the clock skew weather.py allows
    for token in (revoked, kept):
        assert_invalid_token(await mcp_post(jwt_stack.weather.url, token))

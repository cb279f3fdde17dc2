"""JWT access tokens (RFC 9068) checked in weather.py: signature, header, claims, keys, outages."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from secure_mcp.common.resource_credentials import ResourceCredentials
from secure_mcp.weather.errors import AuthServerUnavailableError, InvalidTokenError
from secure_mcp.weather.rfc7662 import IntrospectionVerifier
from secure_mcp.weather.rfc9068 import public_key
from secure_mcp.weather.verifier import AccessTokenVerifier
from tests.support.weather_app import (
    INVALID_TOKEN,
    ISSUER,
    RESOURCE,
    FakeIntrospectionServer,
    new_signing_key,
    post_from,
    weather_app,
)

NOW = int(time.time())
LATER = 30 * 24 * 3600  # "in the future" for the whole run: NOW is taken when tests are collected


def b64(data: dict[str, Any]) -> str:
    """base64url of a JSON object, no padding."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A compact JWS with an empty signature (`alg: none` style)."""
    return f"{b64(header)}.{b64(claims)}."


async def refused_without_introspection(auth_server: FakeIntrospectionServer, token: str) -> None:
    """`token` gets the exact 401 invalid_token challenge and costs no introspection."""
    async with weather_app(auth_server) as app:
        response = await post_from(app, token)
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == INVALID_TOKEN
    assert response.json()["error"] == "invalid_token"
    assert auth_server.introspections == 0


async def test_a_valid_jwt_is_accepted_without_asking_the_authorization_server(
    auth_server: FakeIntrospectionServer,
) -> None:
    async with weather_app(auth_server) as app:
        for _ in range(3):
            assert (await post_from(app, auth_server.jwt())).status_code == 200
    assert auth_server.introspections == 0
    assert auth_server.jwks_fetches == 1  # fetched once, then kept
    assert auth_server.metadata_fetches == 1


BAD_CLAIMS = [
    pytest.param({"exp": NOW - 10}, id="expired"),
    pytest.param({"exp": None}, id="no-exp"),
    pytest.param({"exp": True}, id="exp-not-a-number"),
    pytest.param({"iat": None}, id="no-iat"),
    pytest.param({"iat": NOW + LATER}, id="issued-in-the-future"),
    pytest.param({"nbf": NOW + LATER}, id="not-yet-valid"),
    pytest.param({"nbf": "now"}, id="nbf-not-a-number"),
    pytest.param({"aud": "http://127.0.0.1:9999/mcp"}, id="foreign-audience"),
    pytest.param({"aud": ["http://other/mcp"]}, id="foreign-audience-list"),
    pytest.param({"aud": RESOURCE + "/"}, id="audience-trailing-slash"),
    pytest.param({"aud": None}, id="no-audience"),
    pytest.param({"iss": ISSUER + "/"}, id="issuer-trailing-slash"),
    pytest.param({"iss": ISSUER.upper()}, id="issuer-other-case"),
    pytest.param({"iss": None}, id="no-issuer"),
    pytest.param({"sub": None}, id="no-sub"),
    pytest.param({"client_id": ""}, id="empty-client-id"),
    pytest.param({"jti": None}, id="no-jti"),
    pytest.param({"scope": ["weather:read"]}, id="scope-not-a-string"),
]


@pytest.mark.parametrize("claims", BAD_CLAIMS)
async def test_bad_claims_are_401_invalid_token(
    auth_server: FakeIntrospectionServer, claims: dict[str, Any]
) -> None:
    await refused_without_introspection(auth_server, auth_server.jwt(**claims))


BAD_HEADERS = [
    pytest.param({"typ": None}, id="no-typ"),
    pytest.param({"typ": "JWT"}, id="typ-jwt"),  # an ID token or other JWT is no access token
    pytest.param({"kid": None}, id="no-kid"),
    pytest.param({"kid": "unknown"}, id="unknown-kid"),
]


@pytest.mark.parametrize("header", BAD_HEADERS)
async def test_bad_headers_are_401_invalid_token(
    auth_server: FakeIntrospectionServer, header: dict[str, Any]
) -> None:
    await refused_without_introspection(auth_server, auth_server.jwt(header=header))


def signed_raw(header: dict[str, Any], claims: dict[str, Any], key: ECKey) -> str:
    """A compact ES256 JWS built by hand (joserfc refuses to make some headers)."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore[union-attr]
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}"


async def test_an_unknown_critical_header_is_refused(auth_server: FakeIntrospectionServer) -> None:
    key = auth_server.signing_keys[-1]
    claims = json.loads(base64.urlsafe_b64decode(auth_server.jwt().split(".")[1] + "=="))
    header = {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    async with weather_app(auth_server) as app:  # the hand-made signature is right...
        assert (await post_from(app, signed_raw(header, claims, key))).status_code == 200
    critical = {**header, "crit": ["x-unknown"], "x-unknown": 1}  # ...but RFC 7515 4.1.11
    await refused_without_introspection(auth_server, signed_raw(critical, claims, key))


def test_both_media_types_are_accepted_as_typ() -> None:
    server = FakeIntrospectionServer()
    for typ in ("at+jwt", "application/at+jwt", "AT+JWT"):
        assert server.jwt(header={"typ": typ}).count(".") == 2


async def test_application_at_jwt_is_accepted(auth_server: FakeIntrospectionServer) -> None:
    async with weather_app(auth_server) as app:
        token = auth_server.jwt(header={"typ": "application/at+jwt"})
        assert (await post_from(app, token)).status_code == 200


async def test_alg_none_and_hmac_with_the_public_key_are_refused(
    auth_server: FakeIntrospectionServer,
) -> None:
    key = auth_server.signing_keys[-1]
    claims = json.loads(base64.urlsafe_b64decode(auth_server.jwt().split(".")[1] + "=="))
    forged = [
        unsigned({"alg": "none", "typ": "at+jwt", "kid": key.kid}, claims),
        unsigned({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims),  # no signature
    ]
    # the classic confusion: HS256 keyed with the issuer's public key as published
    public = json.dumps(key.as_dict(private=False)).encode()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    hmac_token = jws.serialize_compact(
        header, json.dumps(claims).encode(), OctKey.import_key(public), algorithms=["HS256"]
    )
    forged.append(hmac_token)
    other_key = new_signing_key()  # a key the issuer never published, claiming its kid
    forged.append(auth_server.jwt(key=other_key, header={"kid": key.kid}))
    for token in forged:
        await refused_without_introspection(auth_server, token)


async def test_a_symmetric_or_private_looking_jwks_entry_is_never_used(
    auth_server: FakeIntrospectionServer,
) -> None:
    key = auth_server.signing_keys[-1]
    oct_key = {"kty": "oct", "k": "c2VjcmV0", "kid": key.kid, "alg": "HS256"}
    assert public_key(oct_key) is None
    assert public_key({**key.as_dict(private=False), "use": "enc"}) is None
    assert public_key({**key.as_dict(private=False), "kid": ""}) is None
    assert public_key({**key.as_dict(private=False), "x": 3}) is None
    assert public_key({**key.as_dict(private=False), "x": "AAAA"}) is None
    found = public_key(key.as_dict(private=True))  # a "d" in the JWKS is ignored, not used
    assert found is not None
    assert not found[1].key.is_private
    wrong_alg = {**key.as_dict(private=False), "alg": "EdDSA"}
    auth_server.published = [wrong_alg]  # RFC 7517 4.4: the key is for another algorithm
    await refused_without_introspection(auth_server, auth_server.jwt())


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "e30.e30.e30", f"{b64({'alg': 'HS256', 'typ': 'at+jwt', 'kid': 'k'})}.e30.x"],
    ids=["not-json", "empty-header", "symmetric-alg"],
)
async def test_jwt_shaped_garbage_costs_nothing(
    auth_server: FakeIntrospectionServer, token: str
) -> None:
    await refused_without_introspection(auth_server, token)
    assert auth_server.jwks_fetches == 0
    assert auth_server.metadata_fetches == 0


async def test_a_small_clock_skew_is_tolerated(auth_server: FakeIntrospectionServer) -> None:
    async with weather_app(auth_server) as app:
        late = auth_server.jwt(exp=int(time.time()) - 2, iat=int(time.time()) - 302)
        early = auth_server.jwt(iat=int(time.time()) + 2, nbf=int(time.time()) + 2)
        assert (await post_from(app, late)).status_code == 200
        assert (await post_from(app, early)).status_code == 200


async def test_audience_is_compared_in_canonical_form(auth_server: FakeIntrospectionServer) -> None:
    async with weather_app(auth_server) as app:
        for aud in ("HTTP://127.0.0.1:8000/mcp", ["https://other/mcp", RESOURCE]):
            assert (await post_from(app, auth_server.jwt(aud=aud))).status_code == 200


async def test_missing_scope_is_403_insufficient_scope(
    auth_server: FakeIntrospectionServer,
) -> None:
    async with weather_app(auth_server) as app:
        response = await post_from(app, auth_server.jwt(scope="weather:alerts"))
        nothing = await post_from(app, auth_server.jwt(scope=None))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert 'scope="weather:read"' in response.headers["www-authenticate"]
    assert nothing.status_code == 403


async def test_valid_jwts_survive_an_authorization_server_outage(
    auth_server: FakeIntrospectionServer,
) -> None:
    opaque = auth_server.grant("opaque")
    async with weather_app(auth_server, introspection_cache_ttl=0) as app:
        assert (await post_from(app, auth_server.jwt())).status_code == 200  # keys fetched
        auth_server.down = True
        assert (await post_from(app, auth_server.jwt())).status_code == 200  # a new token
        assert (await post_from(app, auth_server.jwt(exp=NOW - 60))).status_code == 401
        assert (await post_from(app, opaque)).status_code == 503  # introspection needs the AS


async def test_no_keys_yet_and_the_authorization_server_down_is_503(
    auth_server: FakeIntrospectionServer,
) -> None:
    auth_server.down = True
    async with weather_app(auth_server) as app:
        response = await post_from(app, auth_server.jwt())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        auth_server.down = False
        assert (await post_from(app, auth_server.jwt())).status_code == 200


async def test_an_unknown_kid_refetches_the_keys_at_most_once_per_interval() -> None:
    server, clock = FakeIntrospectionServer(), Clock(time.time())
    verifier = make_verifier(server, jwks_ttl=300, clock=clock)
    await verifier.check(server.jwt())
    for n in range(5):  # made-up key ids: refused, and no fetch within 10 s of the last one
        with pytest.raises(InvalidTokenError):
            await verifier.check(server.jwt(key=new_signing_key(), sub=f"s{n}"))
    assert server.jwks_fetches == 1
    server.signing_keys.append(new_signing_key())  # a rotation: published and signing
    clock.now += 10
    assert await verifier.check(server.jwt())  # its first token fetches the keys again
    assert server.jwks_fetches == 2
    with pytest.raises(InvalidTokenError):
        await verifier.check(server.jwt(key=new_signing_key()))
    assert server.jwks_fetches == 2
    await verifier.aclose()


async def test_a_withdrawn_key_stops_verifying_after_the_refresh() -> None:
    server = FakeIntrospectionServer()
    clock = Clock(time.time())
    verifier = make_verifier(server, jwks_ttl=60, clock=clock)
    token = server.jwt()
    assert (await verifier.check(token)).scopes == ["weather:read"]
    server.signing_keys = [new_signing_key()]  # the old key is withdrawn (compromised)
    clock.now += 61
    assert (await verifier.check(token)).client_id == "client-1"  # stale keys answer at once...
    await drain(verifier)  # ...while they are refreshed in the background
    assert server.jwks_fetches == 2
    with pytest.raises(InvalidTokenError):
        await verifier.check(token)  # the cache was emptied with the key
    await verifier.aclose()


async def test_a_failed_background_refresh_keeps_the_old_keys() -> None:
    server = FakeIntrospectionServer()
    clock = Clock(time.time())
    verifier = make_verifier(server, jwks_ttl=60, clock=clock)
    assert await verifier.check(server.jwt())
    server.down = True
    clock.now += 61
    assert await verifier.check(server.jwt())
    await drain(verifier)
    assert await verifier.check(server.jwt())  # still the old keys, no waiting for the AS
    await verifier.aclose()


async def test_verified_jwts_are_remembered_until_they_expire() -> None:
    server = FakeIntrospectionServer()
    start = int(time.time())
    clock = Clock(float(start))
    verifier = make_verifier(server, jwks_ttl=600, clock=clock)
    token = server.jwt(exp=start + 100, iat=start)
    await verifier.check(token)
    assert len(verifier.cache) == 1
    clock.now += 104
    assert await verifier.check(token)  # within the 5 s skew
    clock.now += 1  # expired and past the skew: not from the cache, refused
    with pytest.raises(InvalidTokenError):
        await verifier.check(token)
    await verifier.aclose()


async def test_introspect_jwt_makes_revocation_immediate(
    auth_server: FakeIntrospectionServer,
) -> None:
    token = auth_server.jwt()
    auth_server.tokens[token] = auth_server.tokens[auth_server.grant("as-view")]
    async with weather_app(auth_server, introspect_jwt=True, introspection_cache_ttl=0) as app:
        assert (await post_from(app, token)).status_code == 200
        auth_server.tokens[token] = {"active": False}  # revoked at the authorization server
        assert (await post_from(app, token)).status_code == 401
        bad = auth_server.jwt(aud="http://other/mcp")  # checked here first: never introspected
        before = auth_server.introspections
        assert (await post_from(app, bad)).status_code == 401
        assert auth_server.introspections == before


async def test_an_issuer_without_jwks_uri(auth_server: FakeIntrospectionServer) -> None:
    del auth_server.metadata["jwks_uri"]
    token = auth_server.jwt()
    await refused_without_introspection(auth_server, token)  # oauth.py's format: refused
    auth_server.tokens[token] = auth_server.tokens[auth_server.grant("x")]
    async with weather_app(auth_server, local_token_check=False) as app:
        assert (await post_from(app, token)).status_code == 200  # another AS: it decides
    assert auth_server.introspections == 1


async def test_a_plain_http_jwks_uri_off_loopback_is_refused(
    auth_server: FakeIntrospectionServer,
) -> None:
    auth_server.metadata["jwks_uri"] = "http://keys.example/jwks"
    await refused_without_introspection(auth_server, auth_server.jwt())
    assert auth_server.jwks_fetches == 0


async def test_a_broken_jwks_answer_is_503(auth_server: FakeIntrospectionServer) -> None:
    auth_server.metadata["jwks_uri"] = f"{ISSUER}/introspect"  # 405 for GET: no JWK Set
    async with weather_app(auth_server) as app:
        assert (await post_from(app, auth_server.jwt())).status_code == 503


class Clock:
    """A settable clock."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_verifier(
    server: FakeIntrospectionServer, *, jwks_ttl: float, clock: Clock
) -> AccessTokenVerifier:
    """The verifier weather.py builds, on the fake authorization server, with `clock`."""
    introspection = IntrospectionVerifier(
        issuer=ISSUER,
        resource=RESOURCE,
        credentials=ResourceCredentials("weather-rs", "rs-secret"),
        cache_ttl=30,
        cache_size=100,
        transport=server.transport(),
        clock=clock,
    )
    return AccessTokenVerifier(introspection, jwks_ttl=jwks_ttl, clock=clock)


async def drain(verifier: AccessTokenVerifier) -> None:
    """Wait for the background JWKS refresh."""
    task = verifier.jwks._background  # type: ignore[attr-defined]
    if task is not None:
        await task


async def test_unavailable_is_not_invalid() -> None:
    server = FakeIntrospectionServer(down=True)
    verifier = make_verifier(server, jwks_ttl=60, clock=Clock(time.time()))
    with pytest.raises(AuthServerUnavailableError):
        await verifier.check(server.jwt())
    assert await verifier.verify_token(server.jwt()) is None
    await verifier.aclose()


async def test_the_sdk_check_reuses_the_verdict(auth_server: FakeIntrospectionServer) -> None:
    verifier = make_verifier(auth_server, jwks_ttl=60, clock=Clock(time.time()))
    token = auth_server.jwt()
    access = await verifier.check(token)
    assert await verifier.verify_token(token) is access
    assert (await verifier.verify_token(auth_server.jwt(sub="other"))) is not None
    await verifier.aclose()


async def test_concurrent_first_jwts_share_one_fetch_and_one_failure() -> None:
    server = FakeIntrospectionServer(delay=0.01)
    verifier = make_verifier(server, jwks_ttl=60, clock=Clock(time.time()))
    tokens = [server.jwt(sub=f"s{n}") for n in range(4)]
    await asyncio.gather(*(verifier.check(token) for token in tokens))
    assert server.jwks_fetches == 1
    await verifier.aclose()
    down = FakeIntrospectionServer(down=True, delay=0.01)
    verifier = make_verifier(down, jwks_ttl=60, clock=Clock(time.time()))
    results = await asyncio.gather(
        *(verifier.check(down.jwt(sub=f"s{n}")) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, AuthServerUnavailableError) for r in results)
    await verifier.aclose()


async def test_jwks_entries_that_are_not_objects_are_skipped(
    auth_server: FakeIntrospectionServer,
) -> None:
    key = auth_server.signing_keys[-1]
    auth_server.published = ["junk", 3, key.as_dict(private=False)]  # type: ignore[list-item]
    async with weather_app(auth_server) as app:
        assert (await post_from(app, auth_server.jwt())).status_code == 200

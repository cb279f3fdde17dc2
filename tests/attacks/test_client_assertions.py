"""Attacks on machine clients: forged, replayed and misdirected client assertions (RFC 7523),
and clients that should not get client credentials at all. Every refusal is 401 invalid_client
(400 unauthorized_client for a client not allowed the grant), and no token is issued."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from tests.support.machine_clients import (
    assertion,
    assertion_form,
    jwks,
    new_key,
    register_machine,
)
from tests.support.oauth_harness import Harness

ISSUER = "http://127.0.0.1:8003"


async def jwt_client(machine: Harness, *keys: Any) -> str:
    """A registered private_key_jwt client_credentials client with `keys`."""
    response = await register_machine(
        machine.http, token_endpoint_auth_method="private_key_jwt", jwks=jwks(*keys)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def refused(response: httpx2.Response, words: str) -> None:
    """401 invalid_client naming the problem; no token, never cached, no Basic challenge."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_client"
    assert words in body["error_description"]
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in response.headers


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    """A JWT assembled by hand (for `alg: none` and friends)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{signature}"


def claims_for(client_id: str, **overrides: Any) -> dict[str, Any]:
    moment = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "exp": moment + 60,
        "jti": f"j{moment}",
        **overrides,
    }


async def test_replayed_assertion(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    signed = assertion(key, client_id, ISSUER)
    assert (await machine.token(assertion_form(signed))).status_code == 200
    refused(await machine.token(assertion_form(signed)), "already used")
    # the same jti in a freshly signed assertion is a replay too
    again = assertion(key, client_id, ISSUER, jti=_jti(signed))
    refused(await machine.token(assertion_form(again)), "already used")


def _jti(signed: str) -> str:
    payload = signed.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


@pytest.mark.parametrize(
    "aud",
    [
        "http://127.0.0.1:8004",  # another authorization server
        "http://127.0.0.1:8000/mcp",  # the resource server
        f"{ISSUER}/introspect",
        [],
    ],
)
async def test_wrong_audience(machine: Harness, aud: Any) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    refused(await machine.token(assertion_form(assertion(key, client_id, aud))), "aud")


async def test_expired_assertion(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    old = assertion(key, client_id, ISSUER, exp=int(time.time()) - 120)
    refused(await machine.token(assertion_form(old)), "expired")
    no_exp = assertion(key, client_id, ISSUER, exp=None)
    refused(await machine.token(assertion_form(no_exp)), "expired")


async def test_long_lived_assertion(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    long = assertion(key, client_id, ISSUER, exp=int(time.time()) + 3600)
    refused(await machine.token(assertion_form(long)), "valid too long")


@pytest.mark.parametrize(
    ("claims", "words"),
    [  # claims as of the moment the test runs (not when the module was collected)
        pytest.param(lambda now: {"nbf": now + 600}, "nbf is in the future", id="nbf"),
        pytest.param(lambda now: {"iat": now + 600}, "iat is in the future", id="iat"),
        pytest.param(lambda now: {"exp": "soon"}, "exp is not a number", id="exp-text"),
        pytest.param(lambda now: {"jti": None}, "needs a jti", id="no-jti"),
        pytest.param(lambda now: {"jti": "j" * 300}, "needs a jti", id="long-jti"),
        pytest.param(lambda now: {"iss": "someone-else"}, "iss and sub", id="iss"),
    ],
)
async def test_bad_claims(
    machine: Harness, claims: Callable[[int], dict[str, Any]], words: str
) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    signed = assertion(key, client_id, ISSUER, **claims(int(time.time())))
    refused(await machine.token(assertion_form(signed)), words)


async def test_unregistered_key(machine: Harness) -> None:
    key, attacker = new_key("k1"), new_key("k1")  # same kid, other key
    client_id = await jwt_client(machine, key)
    forged = assertion(attacker, client_id, ISSUER)
    refused(await machine.token(assertion_form(forged)), "not signed by a registered key")
    unknown_kid = assertion(new_key("k9"), client_id, ISSUER)
    refused(await machine.token(assertion_form(unknown_kid)), "not signed by a registered key")


async def test_another_clients_key(machine: Harness) -> None:
    mine, theirs = new_key(), new_key()
    victim = await jwt_client(machine, theirs)
    await jwt_client(machine, mine)
    forged = assertion(mine, victim, ISSUER)  # sub = the victim, signed by the attacker
    refused(await machine.token(assertion_form(forged)), "not signed by a registered key")


async def test_alg_none(machine: Harness) -> None:
    client_id = await jwt_client(machine, new_key())
    forged = unsigned({"alg": "none"}, claims_for(client_id))
    refused(await machine.token(assertion_form(forged)), "alg 'none' is not allowed")


async def test_hmac_with_the_public_key(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    # the classic confusion: HS256 keyed with the public key's JSON
    secret = OctKey.import_key(json.dumps(key.as_dict(private=False)).encode())
    forged = jwt.encode({"alg": "HS256", "kid": "k1"}, claims_for(client_id), secret)
    refused(await machine.token(assertion_form(forged)), "alg 'HS256' is not allowed")


async def test_algorithm_of_another_key_type(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    rsa = RSAKey.generate_key(2048)
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, claims_for(client_id), rsa)
    refused(await machine.token(assertion_form(forged)), "not signed by a registered key")


async def test_tampered_claims(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    head, _, signature = assertion(key, client_id, ISSUER).split(".")
    body = unsigned({}, claims_for(client_id, exp=int(time.time()) + 200)).split(".")[1]
    refused(await machine.token(assertion_form(f"{head}.{body}.{signature}")), "registered key")


@pytest.mark.parametrize(
    ("form", "words"),
    [
        pytest.param({"client_assertion": "not.a.jwt"}, "not a JWT", id="garbage"),
        pytest.param({"client_assertion": "é.b.c"}, "not a JWT", id="not-ascii"),
        pytest.param({"client_assertion": "a" * 9000}, "too long", id="too-long"),
        pytest.param({"client_assertion_type": "urn:other"}, "client_assertion_type", id="type"),
    ],
)
async def test_malformed_assertions(machine: Harness, form: dict[str, str], words: str) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    data = assertion_form(assertion(key, client_id, ISSUER)) | form
    refused(await machine.token(data), words)


async def test_assertion_and_secret_together(machine: Harness) -> None:
    key = new_key()
    client_id = await jwt_client(machine, key)
    data = assertion_form(assertion(key, client_id, ISSUER), client_secret="x")
    response = await machine.token(data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    other = assertion_form(assertion(key, client_id, ISSUER), client_id="someone")
    refused(await machine.token(other), "does not match")


async def test_secret_client_cannot_use_an_assertion(machine: Harness) -> None:
    response = await register_machine(machine.http)
    client_id = response.json()["client_id"]
    key = new_key()
    refused(
        await machine.token(assertion_form(assertion(key, client_id, ISSUER))),
        "authenticates with client_secret_basic",
    )


async def test_public_client_asking_for_client_credentials(machine: Harness) -> None:
    client = await machine.register()  # a browser client: public, authorization_code
    response = await machine.token(
        {"grant_type": "client_credentials", "client_id": client["client_id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert "access_token" not in response.json()
    registration = await register_machine(machine.http, token_endpoint_auth_method="none")
    assert registration.status_code == 400  # nor can one be registered


async def test_client_credentials_registration_without_the_initial_access_token(
    machine: Harness,
) -> None:
    response = await register_machine(machine.http, headers={})
    assert response.status_code == 401
    guessed = await register_machine(machine.http, headers={"Authorization": "Bearer guess"})
    assert guessed.status_code == 401

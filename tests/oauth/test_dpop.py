"""DPoP at the authorization server (RFC 9449 5, 6, 8, 10): bound tokens and the attacks on them."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from secure_mcp.oauth.settings import settings_from
from tests.support.dpop import hmac_proof, jkt_of, new_key, proof
from tests.support.oauth_harness import RESOURCE, Flow, Harness, pkce, running_harness, segment
from tests.support.oauth_server import IN_PROCESS_ISSUER

ISSUER = IN_PROCESS_ISSUER
TOKEN_URL = f"{ISSUER}/token"


@pytest.fixture
async def nonce_oauth(tmp_path: Path) -> AsyncIterator[Harness]:
    """The authorization server requiring its DPoP nonce (--dpop-nonce)."""
    async with running_harness(tmp_path, dpop_nonce=True) as harness:
        yield harness


async def redeem(oauth: Harness, flow: Flow, key: ECKey | None, **headers: str) -> httpx2.Response:
    """The code exchange with a fresh proof of `key` (none when `key` is None)."""
    extra = {"DPoP": proof(key, "POST", TOKEN_URL)} if key is not None else {}
    data = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "code_verifier": flow.verifier,
        "client_id": flow.client["client_id"],
        "resource": RESOURCE,
    }
    return await oauth.token(data, headers={**extra, **headers})


async def refresh(oauth: Harness, flow: Flow, token: str, key: ECKey | None) -> httpx2.Response:
    """The refresh grant with a fresh proof of `key` (none when None)."""
    headers = {"DPoP": proof(key, "POST", TOKEN_URL)} if key is not None else {}
    data = {"grant_type": "refresh_token", "refresh_token": token}
    auth: Any = None
    if "client_secret" in flow.client:
        auth = (flow.client["client_id"], flow.client["client_secret"])
    else:
        data["client_id"] = flow.client["client_id"]
    return await oauth.token(data, headers=headers, auth=auth)


async def test_metadata_lists_the_proof_algorithms(oauth: Harness) -> None:
    meta = (await oauth.http.get("/.well-known/oauth-authorization-server")).json()
    algorithms = meta["dpop_signing_alg_values_supported"]
    assert algorithms == ["ES256", "ES384", "ES512", "PS256", "RS256"]


async def test_a_proof_binds_the_access_token_to_the_key(oauth: Harness) -> None:
    key = new_key()
    flow = await oauth.new_flow()
    response = await redeem(oauth, flow, key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    seen = await oauth.introspect(body["access_token"])
    assert seen["token_type"] == "DPoP"
    assert seen["cnf"] == {"jkt": jkt_of(key)}


async def test_without_a_proof_tokens_stay_bearer(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await redeem(oauth, flow, None)).json()
    assert body["token_type"] == "Bearer"
    seen = await oauth.introspect(body["access_token"])
    assert seen["token_type"] == "Bearer"
    assert "cnf" not in seen
    renewed = await refresh(oauth, flow, body["refresh_token"], None)
    assert renewed.json()["token_type"] == "Bearer"


async def test_a_public_clients_refresh_token_is_bound_to_the_key(oauth: Harness) -> None:
    key, thief = new_key(), new_key()
    flow = await oauth.new_flow()
    tokens = (await redeem(oauth, flow, key)).json()
    for who in (None, thief):  # a stolen refresh token: no proof, or a proof of another key
        stolen = await refresh(oauth, flow, tokens["refresh_token"], who)
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"
    renewed = await refresh(oauth, flow, tokens["refresh_token"], key)  # family not burnt
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["token_type"] == "DPoP"
    again = await refresh(oauth, flow, renewed.json()["refresh_token"], key)
    assert again.status_code == 200  # the new refresh token is bound to the same key


async def test_a_bearer_refresh_token_upgrades_to_dpop(oauth: Harness) -> None:
    key = new_key()
    flow = await oauth.new_flow()
    tokens = (await redeem(oauth, flow, None)).json()
    renewed = (await refresh(oauth, flow, tokens["refresh_token"], key)).json()
    assert renewed["token_type"] == "DPoP"
    assert (await refresh(oauth, flow, renewed["refresh_token"], None)).status_code == 400


async def test_a_confidential_clients_refresh_token_is_bound_by_its_secret(oauth: Harness) -> None:
    key = new_key()
    flow = await oauth.new_flow(token_endpoint_auth_method="client_secret_basic")
    data = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "code_verifier": flow.verifier,
        "resource": RESOURCE,
    }
    secret = (flow.client["client_id"], flow.client["client_secret"])
    headers = {"DPoP": proof(key, "POST", TOKEN_URL)}
    tokens = (await oauth.token(data, headers=headers, auth=secret)).json()
    assert tokens["token_type"] == "DPoP"
    renewed = await refresh(oauth, flow, tokens["refresh_token"], None)
    assert renewed.status_code == 200
    assert renewed.json()["token_type"] == "Bearer"


async def test_a_replayed_proof_is_refused_and_the_code_survives(oauth: Harness) -> None:
    key = new_key()
    flow = await oauth.new_flow()
    used = proof(key, "POST", TOKEN_URL)
    first = await redeem(oauth, await oauth.new_flow(), None, DPoP=used)
    assert first.status_code == 200
    replay = await redeem(oauth, flow, None, DPoP=used)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_dpop_proof"
    assert replay.headers["cache-control"] == "no-store"
    assert (await redeem(oauth, flow, key)).status_code == 200


ATTACKS = [
    ("wrong-htu", lambda k: proof(k, "POST", f"{ISSUER}/authorize")),
    ("resource-htu", lambda k: proof(k, "POST", RESOURCE)),
    ("wrong-htm", lambda k: proof(k, "GET", TOKEN_URL)),
    ("stale-iat", lambda k: proof(k, "POST", TOKEN_URL, claims={"iat": int(time.time()) - 600})),
    ("alg-none", lambda k: proof(k, "POST", TOKEN_URL, header={"alg": "none"})),
    ("hs256", lambda k: hmac_proof("POST", TOKEN_URL, b"s" * 32)),
    ("other-key-signed", lambda k: proof(k, "POST", TOKEN_URL, sign_with=new_key())),
    ("two-proofs", lambda k: proof(k, "POST", TOKEN_URL) + "," + proof(k, "POST", TOKEN_URL)),
    ("garbage", lambda k: "not-a-proof"),
]


@pytest.mark.parametrize("make", [a[1] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
async def test_bad_proofs_are_refused_before_the_code_is_used(oauth: Harness, make: Any) -> None:
    key = new_key()
    flow = await oauth.new_flow()
    response = await redeem(oauth, flow, None, DPoP=make(key))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert (await redeem(oauth, flow, key)).status_code == 200


async def test_a_nonce_is_required_when_switched_on(nonce_oauth: Harness) -> None:
    key = new_key()
    flow = await nonce_oauth.new_flow()
    asked = await redeem(nonce_oauth, flow, key)
    assert asked.status_code == 400
    assert asked.json()["error"] == "use_dpop_nonce"
    nonce = asked.headers["dpop-nonce"]
    wrong = proof(key, "POST", TOKEN_URL, nonce="0.bad")
    assert (await redeem(nonce_oauth, flow, None, DPoP=wrong)).json()["error"] == "use_dpop_nonce"
    answer = await redeem(nonce_oauth, flow, None, DPoP=proof(key, "POST", TOKEN_URL, nonce=nonce))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"


async def test_dpop_jkt_binds_the_code_to_the_key(oauth: Harness) -> None:
    key = new_key()
    for who in (None, new_key()):  # RFC 9449 10: without the key the code is worthless
        verifier, challenge = pkce()
        flow = Flow(await oauth.register(), verifier, challenge)
        await oauth.authorize(flow, dpop_jkt=jkt_of(key))
        refused = await redeem(oauth, flow, who)
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_grant"
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    await oauth.authorize(flow, dpop_jkt=jkt_of(key))
    answer = await redeem(oauth, flow, key)
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "DPoP"


async def test_a_malformed_dpop_jkt_is_an_invalid_request(oauth: Harness) -> None:
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    response = await oauth.http.get(oauth.authorization_url(flow, dpop_jkt="short"))
    assert response.status_code in (302, 303)
    assert "error=invalid_request" in response.headers["location"]


async def test_jwt_access_tokens_carry_cnf_jkt(tmp_path: Path) -> None:
    key = new_key()
    async with running_harness(tmp_path, access_token_format="jwt") as oauth:
        body = (await redeem(oauth, await oauth.new_flow(), key)).json()
    assert body["token_type"] == "DPoP"
    assert segment(body["access_token"], 1)["cnf"] == {"jkt": jkt_of(key)}


async def test_browser_clients_may_send_proofs_and_read_nonces(oauth: Harness) -> None:
    preflight = await oauth.http.options(
        "/token",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "dpop",
        },
    )
    assert preflight.status_code == 200
    assert "dpop" in preflight.headers["access-control-allow-headers"].lower()
    answer = await oauth.http.post("/token", data={}, headers={"Origin": "https://app.example"})
    assert "dpop-nonce" in answer.headers["access-control-expose-headers"].lower()


def test_the_nonce_switch(tmp_path: Path) -> None:
    env = {"OAUTH_DATA_DIR": str(tmp_path)}
    assert not settings_from([], env).dpop_nonce
    assert settings_from(["--dpop-nonce"], env).dpop_nonce
    assert settings_from([], {**env, "OAUTH_DPOP_NONCE": "1"}).dpop_nonce

"""Attacks on the authorization code and PKCE, against the real oauth.py over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.flows import (
    LiveAuth,
    Stack,
    assert_oauth_error,
    mcp_post,
    pkce,
    query_of,
)

pytestmark = pytest.mark.process


async def test_code_replay_is_refused_and_revokes_the_first_tokens(
    auth: LiveAuth, stack: Stack
) -> None:
    flow = await auth.new_flow()
    first = await auth.redeem(flow)
    assert first.status_code == 200
    tokens = first.json()
    replay = await auth.redeem(flow)
    assert_oauth_error(replay, 400, "invalid_grant")
    # RFC 6749 10.5 / RFC 9700 4.2.4: what the code issued is revoked.
    assert await auth.introspect(tokens["access_token"]) == {"active": False}
    refused = await mcp_post(stack.weather.url, tokens["access_token"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert_oauth_error(await auth.refresh(flow, tokens["refresh_token"]), 400, "invalid_grant")


async def test_code_injection_from_another_client(auth: LiveAuth) -> None:
    victim = await auth.new_flow()
    attacker = await auth.register(client_name="attacker")
    stolen = await auth.redeem(victim, client_id=attacker["client_id"])
    assert_oauth_error(stolen, 400, "invalid_grant")
    attacker_verifier, _ = pkce()
    own_verifier = await auth.redeem(
        victim, client_id=attacker["client_id"], code_verifier=attacker_verifier
    )
    assert_oauth_error(own_verifier, 400, "invalid_grant")
    # The code stays bound to its client: the rightful owner still redeems it.
    assert (await auth.redeem(victim)).status_code == 200


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"code_challenge": None, "code_challenge_method": None}, id="missing"),
        pytest.param({"code_challenge_method": "plain"}, id="plain"),
        pytest.param({"code_challenge_method": None}, id="method-missing"),
        pytest.param({"code_challenge": None}, id="challenge-missing"),
        pytest.param({"code_challenge_method": "s256"}, id="lowercase-method"),
    ],
)
async def test_pkce_downgrade_is_refused_at_authorize(
    auth: LiveAuth, overrides: dict[str, str | None]
) -> None:
    flow = await auth.start()
    if overrides.get("code_challenge_method") == "plain":
        overrides = {**overrides, "code_challenge": flow.verifier}  # plain: challenge == verifier
    response = await auth.http.get(auth.authorization_url(flow, **overrides))
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(flow.redirect_uri + "?")
    params = query_of(location)
    assert params["error"] == "invalid_request"
    assert params["state"] == flow.state
    assert params["iss"] == auth.oauth.issuer
    assert "code" not in params


async def test_pkce_verifier_without_challenge(auth: LiveAuth) -> None:
    # A code without a challenge cannot be obtained (above), so a verifier can never stand in
    # for a missing challenge; a verifier sent with a made-up code is just an unknown code.
    flow = await auth.start()
    location = (await auth.http.get(auth.authorization_url(flow, code_challenge=None))).headers[
        "location"
    ]
    assert "code" not in query_of(location)
    flow.code = "made-up-code-without-a-challenge"
    assert_oauth_error(await auth.redeem(flow), 400, "invalid_grant")


async def test_pkce_challenge_without_verifier(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    assert_oauth_error(await auth.redeem(flow, code_verifier=None), 400, "invalid_request")
    assert (await auth.redeem(flow)).status_code == 200


async def test_wrong_verifier_is_refused_and_code_survives(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    wrong, _ = pkce()
    assert_oauth_error(await auth.redeem(flow, code_verifier=wrong), 400, "invalid_grant")
    # RFC 7636 4.6 failure rolls back: the rightful client (with the verifier) still succeeds.
    assert (await auth.redeem(flow)).status_code == 200


async def test_challenge_as_verifier_is_refused(auth: LiveAuth) -> None:
    # An attacker who saw the authorization request knows the challenge, not the verifier.
    flow = await auth.new_flow()
    assert_oauth_error(await auth.redeem(flow, code_verifier=flow.challenge), 400, "invalid_grant")


async def test_redirect_uri_swapped_at_token_endpoint(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    response = await auth.redeem(flow, redirect_uri="http://127.0.0.1:9/other")
    assert_oauth_error(response, 400, "invalid_grant")
    # OAuth 2.1 4.1.3: omitting redirect_uri is allowed (PKCE binds the code); the code survived
    # the swapped attempt, so its owner redeems it without one
    assert (await auth.redeem(flow, redirect_uri=None)).status_code == 200


async def test_concurrent_code_redemption_succeeds_once(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    responses = await asyncio.gather(*(auth.redeem(flow) for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
    for response in responses:
        if response.status_code == 400:
            assert response.json()["error"] == "invalid_grant"


async def test_concurrent_refresh_token_use_succeeds_at_most_once(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    tokens = (await auth.redeem(flow)).json()
    responses = await asyncio.gather(
        *(auth.refresh(flow, tokens["refresh_token"]) for _ in range(8))
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) <= 1
    for response in responses:
        if response.status_code != 200:
            assert_oauth_error(response, 400, "invalid_grant")

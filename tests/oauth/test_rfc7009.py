"""Revocation: 200 for any token; only the client's own tokens are touched."""

from __future__ import annotations

from tests.support.oauth_harness import Harness


async def test_unknown_token_is_200(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    response = await oauth.http.post(
        "/revoke", data={"token": "unknown", "client_id": flow.client["client_id"]}
    )
    assert response.status_code == 200


async def test_revoking_an_access_token_leaves_the_refresh_token(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow)).json()
    cid = flow.client["client_id"]
    await oauth.http.post("/revoke", data={"token": body["access_token"], "client_id": cid})
    assert await oauth.introspect(body["access_token"]) == {"active": False}
    refreshed = await oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": cid}
    )
    assert refreshed.status_code == 200


async def test_another_clients_token_is_not_revoked(oauth: Harness) -> None:
    victim = await oauth.new_flow()
    body = (await oauth.redeem(victim)).json()
    attacker = await oauth.register()
    response = await oauth.http.post(
        "/revoke", data={"token": body["access_token"], "client_id": attacker["client_id"]}
    )
    assert response.status_code == 200
    assert (await oauth.introspect(body["access_token"]))["active"] is True


async def test_revocation_needs_client_and_token(oauth: Harness) -> None:
    no_client = await oauth.http.post("/revoke", data={"token": "x"})
    assert no_client.status_code == 401
    assert no_client.json()["error"] == "invalid_client"
    flow = await oauth.new_flow()
    no_token = await oauth.http.post("/revoke", data={"client_id": flow.client["client_id"]})
    assert no_token.status_code == 400
    assert no_token.json()["error"] == "invalid_request"

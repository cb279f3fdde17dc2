"""The whole flow in process: register, authorize, token, refresh, introspect, revoke."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.support.oauth_harness import REDIRECT, RESOURCE, Harness, query_of


async def test_full_flow(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    assert flow.code
    tokens = await oauth.redeem(flow)
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    assert tokens.headers["pragma"] == "no-cache"
    body = tokens.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "weather:read"
    info = await oauth.introspect(body["access_token"])
    assert info == {
        "active": True,
        "aud": RESOURCE,
        "scope": "weather:read",
        "client_id": flow.client["client_id"],
        "sub": "demo",
        "exp": info["iat"] + 3600,
        "iat": info["iat"],
        "iss": oauth.settings.issuer,
        "token_type": "Bearer",
    }
    refreshed = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": flow.client["client_id"],
        }
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != body["refresh_token"]
    assert (await oauth.introspect(new["access_token"]))["active"] is True
    revoked = await oauth.http.post(
        "/revoke", data={"token": new["refresh_token"], "client_id": flow.client["client_id"]}
    )
    assert revoked.status_code == 200
    # revoking the refresh token revokes its whole family, access tokens included
    assert await oauth.introspect(new["access_token"]) == {"active": False}
    assert await oauth.introspect(body["access_token"]) == {"active": False}


async def test_success_redirect_carries_code_state_iss(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    location = await oauth.authorize(flow)
    params = query_of(location)
    assert location.startswith(REDIRECT + "?")
    assert params["state"] == flow.state
    assert params["iss"] == oauth.settings.issuer
    assert len(params["code"]) >= 43


async def test_every_authorization_asks_for_the_password(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    again = await oauth.http.get(oauth.authorization_url(flow))  # same browser, same client
    assert again.status_code == 200
    assert 'name="password"' in again.text
    assert not oauth.http.cookies.get("oauth_session")


async def test_loopback_redirect_any_port(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    flow.redirect_uri = "http://127.0.0.1:45678/callback"
    location = await oauth.authorize(flow)
    assert urlsplit(location).port == 45678
    response = await oauth.redeem(flow)
    assert response.status_code == 200, response.text


async def test_deny_redirects_access_denied(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    oauth.http.cookies.clear()
    location = await oauth.authorize(flow, decision="deny")
    params = query_of(location)
    assert params["error"] == "access_denied"
    assert params["state"] == flow.state
    assert params["iss"] == oauth.settings.issuer
    assert "code" not in params


async def test_confidential_client_basic_and_post(oauth: Harness) -> None:
    for method in ("client_secret_basic", "client_secret_post"):
        flow = await oauth.new_flow(token_endpoint_auth_method=method)
        secret = flow.client["client_secret"]
        assert len(secret) >= 43
        assert flow.client["client_secret_expires_at"] == 0
        data = {
            "grant_type": "authorization_code",
            "code": flow.code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        }
        if method == "client_secret_basic":
            response = await oauth.token(data, auth=(flow.client["client_id"], secret))
        else:
            data.update(client_id=flow.client["client_id"], client_secret=secret)
            response = await oauth.token(data)
        assert response.status_code == 200, response.text


async def test_refresh_narrows_scope(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow)).json()
    response = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": flow.client["client_id"],
            "scope": "weather:read",
            "resource": RESOURCE,
        }
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "weather:read"


async def test_no_refresh_token_without_refresh_grant(oauth: Harness) -> None:
    flow = await oauth.new_flow(grant_types=["authorization_code"])
    body = (await oauth.redeem(flow)).json()
    assert "refresh_token" not in body


async def test_resource_defaults_to_the_only_configured_one(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    await oauth.authorize(flow, resource=None)
    body = (await oauth.redeem(flow, resource="")).json()
    assert (await oauth.introspect(body["access_token"]))["aud"] == RESOURCE

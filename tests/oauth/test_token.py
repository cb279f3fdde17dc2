"""The token endpoint's security properties: single-use codes, rotation, client authentication."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import update

from secure_mcp.oauth.models import AuthorizationCode
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import RESOURCE, Flow, Harness, pkce, running_harness
from tests.support.oauth_server import running_oauth_app


async def test_code_replay_is_rejected_and_revokes_its_tokens(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    first = (await oauth.redeem(flow)).json()
    replay = await oauth.redeem(flow)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert await oauth.introspect(first["access_token"]) == {"active": False}
    refresh = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": flow.client["client_id"],
        }
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_concurrent_redemption_succeeds_once(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    results = await asyncio.gather(*(oauth.redeem(flow) for _ in range(5)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 400, 400, 400, 400]


async def test_code_from_another_client(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    other = await oauth.register()
    response = await oauth.redeem(flow, client_id=other["client_id"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert (await oauth.redeem(flow)).status_code == 200


async def test_expired_code(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:
        await session.execute(update(AuthorizationCode).values(expires_at=1))
    await db.close()
    response = await oauth.redeem(flow)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "expired" in response.json()["error_description"]


async def _refresh(oauth: Harness, flow: Flow, token: str, **extra: str) -> httpx2.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    return await oauth.token({**data, "client_id": flow.client["client_id"], **extra})


async def test_refresh_token_reuse_revokes_the_family(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    first = (await oauth.redeem(flow)).json()
    second = (await _refresh(oauth, flow, first["refresh_token"])).json()
    reuse = await _refresh(oauth, flow, first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert await oauth.introspect(second["access_token"]) == {"active": False}
    after = await _refresh(oauth, flow, second["refresh_token"])
    assert after.json()["error"] == "invalid_grant"


async def test_refresh_errors(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow)).json()
    other = await oauth.new_flow()
    cases = [
        (_refresh(oauth, flow, "unknown"), "invalid_grant"),
        (_refresh(oauth, flow, "r" * 600), "invalid_grant"),
        (_refresh(oauth, flow, ""), "invalid_request"),  # absent: OAuth 2.1 4.3.1
        (_refresh(oauth, flow, body["access_token"]), "invalid_grant"),
        (_refresh(oauth, other, body["refresh_token"]), "invalid_grant"),
        (_refresh(oauth, flow, body["refresh_token"], scope="admin"), "invalid_scope"),
        (_refresh(oauth, flow, body["refresh_token"], resource="http://x/mcp"), "invalid_target"),
    ]
    for call, error in cases:
        response = await call
        assert response.status_code == 400
        assert response.json()["error"] == error
    # the failed attempts above did not use up the refresh token
    assert (await _refresh(oauth, flow, body["refresh_token"])).status_code == 200


async def test_refresh_grant_needs_registration(oauth: Harness) -> None:
    flow = await oauth.new_flow(grant_types=["authorization_code"])
    response = await _refresh(oauth, flow, "anything")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


@pytest.fixture
async def two_scopes(tmp_path: Path) -> AsyncIterator[Harness]:
    """A server whose resource accepts two scopes."""
    async with running_oauth_app(tmp_path, scopes=("weather:read", "weather:alerts")) as (app, s):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=s.issuer) as client:
            yield Harness(app, s, client)


async def test_refresh_may_narrow_never_widen(two_scopes: Harness) -> None:
    oauth = two_scopes
    verifier, challenge = pkce()
    flow = Flow(await oauth.register(), verifier, challenge)
    await oauth.authorize(flow, scope="weather:read")
    body = (await oauth.redeem(flow)).json()
    assert body["scope"] == "weather:read"
    wider = await _refresh(oauth, flow, body["refresh_token"], scope="weather:read weather:alerts")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    # default scope: everything the resource accepts
    full = Flow(await oauth.register(), *pkce())
    await oauth.authorize(full, scope=None)
    granted = (await oauth.redeem(full)).json()
    assert granted["scope"] == "weather:read weather:alerts"
    narrow = await _refresh(oauth, full, granted["refresh_token"], scope="weather:alerts")
    assert narrow.json()["scope"] == "weather:alerts"
    # the new refresh token keeps the original grant (RFC 6749 6)
    again = await _refresh(oauth, full, narrow.json()["refresh_token"])
    assert again.json()["scope"] == "weather:read weather:alerts"


async def test_client_registered_scope_limits_requests(two_scopes: Harness) -> None:
    oauth = two_scopes
    flow = Flow(await oauth.register(scope="weather:read"), *pkce())
    location = await oauth.authorize(flow, scope="weather:alerts")
    assert "error=invalid_scope" in location
    await oauth.authorize(flow, scope=None)
    assert (await oauth.redeem(flow)).json()["scope"] == "weather:read"


async def test_wrong_secret_basic_gets_www_authenticate(oauth: Harness) -> None:
    flow = await oauth.new_flow(token_endpoint_auth_method="client_secret_basic")
    data = {
        "grant_type": "authorization_code",
        "code": flow.code,
        "redirect_uri": flow.redirect_uri,
        "code_verifier": flow.verifier,
    }
    wrong = await oauth.token(data, auth=(flow.client["client_id"], "wrong"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    post = await oauth.token({**data, "client_id": flow.client["client_id"], "client_secret": "x"})
    assert post.status_code == 401  # registered for basic, tried post
    both = await oauth.token(
        {**data, "client_secret": "x"}, auth=(flow.client["client_id"], "wrong")
    )
    assert both.json()["error"] == "invalid_request"
    mismatch = await oauth.token(
        {**data, "client_id": "other"}, auth=(flow.client["client_id"], "s")
    )
    assert mismatch.status_code == 401
    ok = await oauth.token(data, auth=(flow.client["client_id"], flow.client["client_secret"]))
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer abc", id="bearer"),
        pytest.param("Basic !!!", id="not-base64"),
        pytest.param("Basic bm9jb2xvbg==", id="no-colon"),
        pytest.param("Basic /w==", id="not-utf8"),
    ],
)
async def test_malformed_client_authorization(oauth: Harness, header: str) -> None:
    response = await oauth.token(
        {"grant_type": "authorization_code", "code": "x"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="oauth"'


async def test_two_resources_need_an_explicit_resource(tmp_path: Path) -> None:
    resources = (RESOURCE, "http://127.0.0.1:8001/mcp")
    async with running_harness(tmp_path, resources=resources) as oauth:
        flow = Flow(await oauth.register(), *pkce())
        assert "error=invalid_target" in await oauth.authorize(flow, resource=None)
        await oauth.authorize(flow, resource=resources[1])
        body = (await oauth.redeem(flow, resource=resources[1])).json()
        # RFC 8707: the token's audience is the resource; the other server sees it inactive
        assert (await oauth.introspect(body["access_token"], resources[1]))["active"] is True
        assert await oauth.introspect(body["access_token"], resources[0]) == {"active": False}


async def test_code_redeemed_without_resource_keeps_authorized_audience(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow, resource="")).json()
    assert (await oauth.introspect(body["access_token"]))["aud"] == RESOURCE


async def test_settings_are_frozen(oauth: Harness) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        oauth.settings.issuer = "x"  # type: ignore[misc]

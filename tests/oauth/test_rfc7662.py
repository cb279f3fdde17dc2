"""Introspection: only authenticated resource servers, only their own audience."""

from __future__ import annotations

import httpx2
import pytest
from sqlalchemy import update

from secure_mcp.oauth.models import Token
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import Harness


@pytest.mark.parametrize(
    ("auth", "headers"),
    [
        pytest.param(None, {}, id="no-auth"),
        pytest.param(("unknown", "secret"), {}, id="unknown-resource-server"),
        pytest.param(None, {"Authorization": "Bearer x"}, id="bearer"),
        pytest.param(None, {"Authorization": "Basic %%%"}, id="malformed"),
    ],
)
async def test_unauthenticated_introspection(
    oauth: Harness, auth: tuple[str, str] | None, headers: dict[str, str]
) -> None:
    response = await oauth.http.post(
        "/introspect", data={"token": "x"}, auth=auth or httpx2.USE_CLIENT_DEFAULT, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"] == 'Basic realm="oauth"'


async def test_wrong_resource_server_secret(oauth: Harness) -> None:
    client_id, _ = oauth.resource_auth()
    response = await oauth.http.post("/introspect", data={"token": "x"}, auth=(client_id, "wrong"))
    assert response.status_code == 401


async def test_missing_token_is_invalid_request(oauth: Harness) -> None:
    response = await oauth.http.post("/introspect", data={"other": "x"}, auth=oauth.resource_auth())
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_inactive_answers_are_exactly_active_false(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow)).json()
    assert await oauth.introspect("no-such-token") == {"active": False}
    assert await oauth.introspect("x" * 1000) == {"active": False}
    assert await oauth.introspect("x" * 8193) == {"active": False}  # longer than any we issue
    assert await oauth.introspect(body["refresh_token"]) == {"active": False}
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:
        await session.execute(update(Token).values(expires_at=1))
    await db.close()
    assert await oauth.introspect(body["access_token"]) == {"active": False}


async def test_token_type_hint_is_accepted(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = (await oauth.redeem(flow)).json()
    response = await oauth.http.post(
        "/introspect",
        data={"token": body["access_token"], "token_type_hint": "access_token"},
        auth=oauth.resource_auth(),
    )
    assert response.json()["active"] is True
    assert response.headers["cache-control"] == "no-store"

"""Attacks with tokens: other audiences, expiry, revocation, refresh reuse, scope widening."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.support.attack_stack import CACHE_TTL
from tests.support.flows import (
    LiveAuth,
    Stack,
    assert_invalid_token,
    assert_oauth_error,
    live_auth,
    mcp_post,
    run_stack,
)

pytestmark = pytest.mark.process

SHORT_TTL = 2  # seconds an access token lives on the short-lived stack


async def refused_within(url: str, token: str, seconds: float) -> float:
    """Poll until weather.py refuses `token`; return how long it took (fails past `seconds`)."""
    start = time.monotonic()
    while True:
        response = await mcp_post(url, token)
        if response.status_code != 200:
            assert_invalid_token(response)
            return time.monotonic() - start
        assert time.monotonic() - start < seconds, "token still accepted past the bound"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def short_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second oauth.py + weather.py pair whose access tokens live SHORT_TTL seconds."""
    tmp_path = tmp_path_factory.mktemp("short-ttl")
    env = {"OAUTH_ACCESS_TOKEN_TTL": str(SHORT_TTL)}
    with run_stack(tmp_path, oauth_env=env, cache_ttl=30) as running:
        yield running


async def test_token_for_another_audience_is_refused(auth: LiveAuth, stack: Stack) -> None:
    # Token passthrough: a token the same AS issued for another resource is not ours (RFC 8707).
    async with live_auth(stack.oauth, stack.foreign) as foreign_auth:
        _, tokens = await foreign_auth.tokens()
    assert_invalid_token(await mcp_post(stack.weather.url, tokens["access_token"]))
    assert await auth.introspect(tokens["access_token"]) == {"active": False}
    _, mine = await auth.tokens()
    assert (await mcp_post(stack.weather.url, mine["access_token"])).status_code == 200


async def test_refresh_token_used_as_bearer_is_refused(auth: LiveAuth, stack: Stack) -> None:
    _, tokens = await auth.tokens()
    assert_invalid_token(await mcp_post(stack.weather.url, tokens["refresh_token"]))


async def test_expired_token_is_refused(short_stack: Stack) -> None:
    async with live_auth(short_stack.oauth, short_stack.weather.url) as auth:
        _, tokens = await auth.tokens()
        assert tokens["expires_in"] == SHORT_TTL
        token = tokens["access_token"]
        assert (await mcp_post(short_stack.weather.url, token)).status_code == 200  # now cached
        # The 30 s cache keeps an entry only until the token's own expiry.
        await refused_within(short_stack.weather.url, token, SHORT_TTL + 2)
        assert await auth.introspect(token) == {"active": False}


async def test_revoked_token_is_refused_within_the_cache_bound(
    auth: LiveAuth, stack: Stack
) -> None:
    flow, tokens = await auth.tokens()
    token = tokens["access_token"]
    assert (await mcp_post(stack.weather.url, token)).status_code == 200  # cached by weather.py
    revoked = await auth.revoke(flow, token)
    assert revoked.status_code == 200
    assert await auth.introspect(token) == {"active": False}
    await refused_within(stack.weather.url, token, CACHE_TTL + 1.5)


async def test_refresh_token_reuse_kills_the_new_tokens(auth: LiveAuth, stack: Stack) -> None:
    flow, first = await auth.tokens()
    rotated = await auth.refresh(flow, first["refresh_token"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    reuse = await auth.refresh(flow, first["refresh_token"])
    assert_oauth_error(reuse, 400, "invalid_grant")
    # RFC 9700 4.14.2: the whole family is revoked, including what the rotation issued.
    assert await auth.introspect(second["access_token"]) == {"active": False}
    assert_invalid_token(await mcp_post(stack.weather.url, second["access_token"]))
    assert_oauth_error(await auth.refresh(flow, second["refresh_token"]), 400, "invalid_grant")


async def test_scope_widening_on_refresh_is_refused(auth: LiveAuth) -> None:
    flow = await auth.start()
    await auth.authorize(flow, scope="weather:read")
    granted = (await auth.redeem(flow)).json()
    assert granted["scope"] == "weather:read"
    wider = await auth.refresh(flow, granted["refresh_token"], scope="weather:read weather:alerts")
    assert_oauth_error(wider, 400, "invalid_scope")
    unknown = await auth.refresh(flow, granted["refresh_token"], scope="weather:admin")
    assert_oauth_error(unknown, 400, "invalid_scope")
    # The refused attempts did not use up the refresh token.
    same = await auth.refresh(flow, granted["refresh_token"])
    assert same.status_code == 200
    assert same.json()["scope"] == "weather:read"


async def test_refresh_token_of_another_client_is_refused(auth: LiveAuth) -> None:
    _, victim = await auth.tokens()
    attacker = await auth.start(client_name="attacker")
    assert_oauth_error(await auth.refresh(attacker, victim["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize(
    ("credentials", "headers"),
    [
        pytest.param(None, {}, id="no-credentials"),
        pytest.param(("unknown-rs", "secret"), {}, id="unknown-resource-server"),
        pytest.param("wrong-secret", {}, id="wrong-secret"),
        pytest.param(None, {"authorization": "Bearer {token}"}, id="bearer-token-as-auth"),
        pytest.param(None, {"authorization": "Basic %%%not-base64"}, id="malformed-basic"),
        pytest.param("public-client", {}, id="public-client-id"),
    ],
)
async def test_introspection_needs_resource_server_credentials(
    auth: LiveAuth, credentials: object, headers: dict[str, str]
) -> None:
    flow, tokens = await auth.tokens()
    basic: tuple[str, str] | None
    if credentials == "wrong-secret":
        basic = (auth.resource_auth()[0], "wrong")
    elif credentials == "public-client":
        basic = (flow.client["client_id"], "")
    else:
        basic = credentials  # type: ignore[assignment]
    sent = {k: v.format(token=tokens["access_token"]) for k, v in headers.items()}
    response = await auth.http.post(
        f"{auth.oauth.issuer}/introspect",
        data={"token": tokens["access_token"]},
        auth=basic or httpx2.USE_CLIENT_DEFAULT,
        headers=sent,
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"] == 'Basic realm="oauth"'
    assert "active" not in response.json()


async def test_introspection_by_another_resource_server_is_inactive(
    auth: LiveAuth, stack: Stack
) -> None:
    _, tokens = await auth.tokens()
    assert await auth.introspect(tokens["access_token"], stack.foreign) == {"active": False}
    assert (await auth.introspect(tokens["access_token"]))["active"] is True

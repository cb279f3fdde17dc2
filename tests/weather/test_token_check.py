"""Garbage bearer tokens cost the authorization server nothing; failures are limited per source."""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import pytest

from secure_mcp.common import token_format
from tests.support.weather_app import (
    INVALID_TOKEN,
    FakeIntrospectionServer,
    access_token,
    post_from,
    post_mcp,
    weather_app,
)

GARBAGE = [
    pytest.param(lambda: secrets.token_urlsafe(32), id="issued-before-the-format"),
    pytest.param(lambda: access_token("x")[:-1] + "g", id="not-hex"),
    pytest.param(lambda: access_token("x")[:-8] + "00000000", id="wrong-checksum"),
    pytest.param(lambda: token_format.mint(token_format.REFRESH_PREFIX), id="refresh-token"),
    pytest.param(lambda: access_token("x")[1:], id="truncated"),
    pytest.param(lambda: "smcp_at_" + "A" * 52, id="no-checksum"),
]


@pytest.mark.parametrize("make", GARBAGE)
async def test_malformed_token_is_refused_without_introspection(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer, make: Any
) -> None:
    response = await post_mcp(weather, make())
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate")[0] == INVALID_TOKEN
    assert response.json()["error"] == "invalid_token"
    assert auth_server.introspections == 0
    assert auth_server.metadata_fetches == 0


async def test_garbage_flood_costs_zero_introspections(
    weather: httpx2.AsyncClient, auth_server: FakeIntrospectionServer
) -> None:
    for _ in range(25):  # fewer than the failed-token allowance: every answer is the 401
        assert (await post_mcp(weather, secrets.token_urlsafe(32))).status_code == 401
    assert auth_server.introspections == 0


async def test_any_format_introspects_every_token(auth_server: FakeIntrospectionServer) -> None:
    # --token-format any: for an authorization server whose tokens have another shape.
    async with weather_app(auth_server, local_token_check=False) as app:
        assert (await post_from(app, "other-servers-token")).status_code == 401
        auth_server.tokens["other-servers-token"] = auth_server.tokens[auth_server.grant("x")]
        assert (await post_from(app, "other-servers-token")).status_code == 200
    assert auth_server.introspections == 2


async def test_failed_tokens_are_limited_per_source(auth_server: FakeIntrospectionServer) -> None:
    valid, fresh = auth_server.grant("valid"), auth_server.grant("fresh")
    async with weather_app(auth_server, failed_token_limit=3) as app:
        assert (await post_from(app, valid)).status_code == 200  # verified and cached
        for token in [access_token("unknown"), secrets.token_urlsafe(32), access_token("other")]:
            response = await post_from(app, token)
            assert response.status_code == 401  # RFC 6750 answers stay exact under the limit
        assert auth_server.introspections == 1 + 2  # the malformed one was free but counted
        limited = await post_from(app, access_token("unknown-again"))
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "20"  # 3 per minute: one back every 20 s
        assert "www-authenticate" not in limited.headers
        assert limited.json() == {
            "error": "too_many_requests",
            "error_description": "Too many invalid access tokens from this address; retry later.",
        }
        # A malformed token still gets the exact 401: refusing it costs nothing anyway.
        malformed = await post_from(app, secrets.token_urlsafe(32))
        assert malformed.headers.get_list("www-authenticate")[0] == INVALID_TOKEN
        assert auth_server.introspections == 3  # nothing more reached the authorization server
        # A token verified earlier keeps working: others behind the same address are not locked
        # out; a token never seen waits like any other (honest 429, never a false 401).
        assert (await post_from(app, valid)).status_code == 200
        assert (await post_from(app, fresh)).status_code == 429
        # Another source has its own allowance.
        assert (await post_from(app, fresh, "127.0.0.2")).status_code == 200
        # The same IPv4 address written as IPv6 is the same source.
        assert (await post_from(app, access_token("new"), "::ffff:127.0.0.1")).status_code == 429

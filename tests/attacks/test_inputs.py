"""SQL-ish and huge inputs at every endpoint of both servers: exact refusals, never a 500."""

from __future__ import annotations

import json

import httpx2
import pytest

from tests.support.flows import LiveAuth, Stack, assert_oauth_error, mcp_post

pytestmark = pytest.mark.process

SQLISH = [
    "' OR '1'='1",
    "x'; DROP TABLE clients; --",
    '" OR ""="',
    "1 UNION SELECT client_id, secret_hash FROM clients --",
    "%' OR 1=1 --",
]
MEGABYTE = 1024 * 1024


@pytest.mark.parametrize("value", SQLISH, ids=range(len(SQLISH)))
async def test_sqlish_client_id_at_authorize(auth: LiveAuth, value: str) -> None:
    response = await auth.http.get(
        f"{auth.oauth.issuer}/authorize", params={"client_id": value, "redirect_uri": "x"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "The application (client_id) is not registered here" in response.text


@pytest.mark.parametrize("value", SQLISH, ids=range(len(SQLISH)))
async def test_sqlish_values_at_the_token_endpoint(auth: LiveAuth, value: str) -> None:
    flow = await auth.new_flow()
    assert_oauth_error(await auth.redeem(flow, code=value), 400, "invalid_grant")
    assert_oauth_error(await auth.redeem(flow, client_id=value), 401, "invalid_client")
    assert_oauth_error(await auth.refresh(flow, value), 400, "invalid_grant")
    assert (await auth.redeem(flow)).status_code == 200  # nothing above touched the real code


@pytest.mark.parametrize("value", SQLISH, ids=range(len(SQLISH)))
async def test_sqlish_tokens_at_introspection_and_revocation(auth: LiveAuth, value: str) -> None:
    flow, tokens = await auth.tokens()
    assert await auth.introspect(value) == {"active": False}
    assert (await auth.revoke(flow, value)).status_code == 200
    assert (await auth.introspect(tokens["access_token"]))["active"] is True


async def test_sqlish_client_metadata_is_stored_verbatim(auth: LiveAuth) -> None:
    name = SQLISH[1]
    client = await auth.register(client_name=name)
    assert client["client_name"] == name
    flow, _ = await auth.tokens(client_name=name)  # the clients table is still there
    assert flow.client["client_name"] == name


async def test_sqlish_bearer_token_at_weather(stack: Stack) -> None:
    response = await mcp_post(stack.weather.url, SQLISH[0])
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_huge_registration_body(auth: LiveAuth) -> None:
    body = json.dumps({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x" * MEGABYTE})
    response = await auth.http.post(
        f"{auth.oauth.issuer}/register",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert_oauth_error(response, 400, "invalid_client_metadata")


@pytest.mark.parametrize("endpoint", ["/token", "/revoke"])
async def test_huge_form_body(auth: LiveAuth, endpoint: str) -> None:
    flow = await auth.new_flow()
    content = f"client_id={flow.client['client_id']}&token=" + "t" * MEGABYTE
    response = await auth.http.post(
        f"{auth.oauth.issuer}{endpoint}",
        content=content,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_huge_introspection_body(auth: LiveAuth) -> None:
    response = await auth.http.post(
        f"{auth.oauth.issuer}/introspect",
        content="token=" + "t" * MEGABYTE,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=auth.resource_auth(),
    )
    assert_oauth_error(response, 400, "invalid_request")


async def test_huge_values_within_the_body_limit(auth: LiveAuth) -> None:
    flow = await auth.new_flow()
    big = "A" * 12_000  # under the 16 KiB body limit, far over any sane value
    assert_oauth_error(await auth.redeem(flow, code=big), 400, "invalid_grant")
    assert_oauth_error(await auth.redeem(flow, code_verifier=big), 400, "invalid_request")
    assert await auth.introspect(big) == {"active": False}
    response = await auth.http.get(
        auth.authorization_url(await auth.start(), state="s" * 5000),
    )
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["location"]


async def test_huge_query_string_at_authorize(auth: LiveAuth) -> None:
    response = await auth.http.get(f"{auth.oauth.issuer}/authorize?client_id={'c' * 60_000}")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.text == "Invalid HTTP request received."  # a head over 16 KiB


async def test_huge_bearer_token_at_weather(stack: Stack) -> None:
    response = await mcp_post(stack.weather.url, "a" * 5000)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_huge_mcp_body_with_a_valid_token(auth: LiveAuth, stack: Stack) -> None:
    _, tokens = await auth.tokens()
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * (4 * MEGABYTE)}}
    response = await mcp_post(stack.weather.url, tokens["access_token"], body=body)
    assert response.status_code == 413
    assert (await mcp_post(stack.weather.url, tokens["access_token"])).status_code == 200


async def test_header_flood_is_refused_without_a_500(stack: Stack) -> None:
    headers = {f"x-flood-{i}": "v" * 100 for i in range(400)}
    response = await mcp_post(stack.weather.url, None, headers=headers)
    assert response.status_code == 400  # 40 KB of headers: over the 16 KiB head cap
    assert response.text == "Invalid HTTP request received."
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"{stack.weather.origin}/health")).status_code == 200

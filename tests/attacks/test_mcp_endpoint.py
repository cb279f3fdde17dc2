"""Attacks on weather.py's MCP endpoint: DNS rebinding (Host, Origin) and token smuggling."""

from __future__ import annotations

import httpx2
import pytest

from tests.support.flows import INITIALIZE, MCP_ACCEPT, LiveAuth, Stack, mcp_post

pytestmark = pytest.mark.process


@pytest.fixture
async def token(auth: LiveAuth) -> str:
    """A valid access token for weather.py."""
    _, tokens = await auth.tokens()
    return str(tokens["access_token"])


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("evil.example", id="foreign-name"),
        pytest.param("evil.example:{port}", id="foreign-name-same-port"),
        pytest.param("127.0.0.1:{port}.evil.example", id="suffix-trick"),
        pytest.param("127.0.0.1:1", id="other-port"),
        pytest.param("0.0.0.0:{port}", id="wildcard-address"),
    ],
)
async def test_dns_rebinding_host_header_is_refused(stack: Stack, token: str, host: str) -> None:
    headers = {"host": host.format(port=stack.weather.port)}
    response = await mcp_post(stack.weather.url, token, headers=headers)
    assert response.status_code == 421
    assert response.text.startswith("Misdirected request")
    assert "jsonrpc" not in response.text


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param("http://evil.example", id="foreign"),
        pytest.param("null", id="null-origin"),
        pytest.param("http://127.0.0.1:{port}.evil.example", id="suffix-trick"),
        pytest.param("http://127.0.0.1:1", id="other-port"),
    ],
)
async def test_cross_origin_request_is_refused(stack: Stack, token: str, origin: str) -> None:
    headers = {"origin": origin.format(port=stack.weather.port)}
    response = await mcp_post(stack.weather.url, token, headers=headers)
    assert response.status_code == 403
    assert response.text == "Invalid Origin header"


async def test_same_origin_and_loopback_names_are_accepted(stack: Stack, token: str) -> None:
    port = stack.weather.port
    for headers in (
        {"origin": f"http://127.0.0.1:{port}"},
        {"host": f"localhost:{port}", "origin": f"http://localhost:{port}"},
    ):
        assert (await mcp_post(stack.weather.url, token, headers=headers)).status_code == 200


async def test_rebinding_without_a_token_learns_nothing(stack: Stack) -> None:
    # A rebound page has no bearer token: the Host check comes first, so it does not even get
    # the challenge (which names the metadata and the scopes), only 421; a foreign Origin 403.
    port = stack.weather.port
    for headers, status in (
        ({"host": "evil.example"}, 421),
        ({"host": f"evil.example:{port}"}, 421),
        ({"origin": "http://evil.example"}, 403),
    ):
        response = await mcp_post(stack.weather.url, None, headers=headers)
        assert response.status_code == status, headers
        assert "www-authenticate" not in response.headers
        assert "jsonrpc" not in response.text


async def test_token_in_query_string_is_refused(stack: Stack, token: str) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            stack.weather.url,
            params={"access_token": token},
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_two_authorization_headers_are_refused(stack: Stack, token: str) -> None:
    async with httpx2.AsyncClient() as http:
        request = http.build_request(
            "POST",
            stack.weather.url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers=[
                ("accept", "application/json, text/event-stream"),
                ("authorization", f"Bearer {token}"),
                ("authorization", "Bearer other"),
            ],
        )
        response = await http.send(request)
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


async def test_unknown_paths_need_a_token_too(stack: Stack) -> None:
    async with httpx2.AsyncClient() as http:
        for path in ("/admin", "/mcp/../admin", "/MCP", "/.well-known/../mcp"):
            response = await http.get(f"{stack.weather.origin}{path}")
            assert response.status_code == 401, path


async def test_host_header_does_not_steer_the_metadata(stack: Stack) -> None:
    # Host-header injection: published URLs come from configuration, never from the request.
    # (oauth.py refuses a foreign Host outright: tests/attacks/test_local_attacker.py)
    async with httpx2.AsyncClient() as http:
        as_meta = await http.get(
            stack.oauth.metadata_url,
            headers={"host": f"localhost:{stack.oauth.port}", "x-forwarded-host": "evil.example"},
        )
        prm_url = f"{stack.weather.origin}/.well-known/oauth-protected-resource/mcp"
        prm = await http.get(
            prm_url,
            headers={"host": f"localhost:{stack.weather.port}", "x-forwarded-host": "evil.example"},
        )
        foreign = await http.get(prm_url, headers={"host": "evil.example"})
    assert foreign.status_code == 421  # a foreign Host gets nothing at all
    assert as_meta.status_code == 200
    assert "evil.example" not in as_meta.text
    assert as_meta.json()["issuer"] == stack.oauth.issuer
    assert as_meta.json()["token_endpoint"] == f"{stack.oauth.issuer}/token"
    assert prm.status_code == 200
    assert "evil.example" not in prm.text
    assert prm.json()["resource"] == stack.weather.url
    assert prm.json()["authorization_servers"] == [stack.oauth.issuer]


async def test_host_header_does_not_steer_the_challenge(stack: Stack) -> None:
    # A foreign Host gets no challenge at all (421 above); ours gets one naming our metadata.
    headers = {"host": f"localhost:{stack.weather.port}", "x-forwarded-host": "evil.example"}
    response = await mcp_post(stack.weather.url, None, headers=headers)
    assert response.status_code == 401
    assert "evil.example" not in response.headers["www-authenticate"]
    assert f'resource_metadata="{stack.weather.origin}/' in response.headers["www-authenticate"]


async def test_legacy_initialize_opens_no_session(stack: Stack, auth: LiveAuth) -> None:
    # Stateless MCP: nothing per identity to pile up, so no one can take all sessions.
    _, tokens = await auth.tokens()
    headers = {"accept": MCP_ACCEPT, "authorization": f"Bearer {tokens['access_token']}"}
    async with httpx2.AsyncClient(timeout=10) as http:
        for _ in range(20):
            response = await http.post(stack.weather.url, json=INITIALIZE, headers=headers)
            assert response.status_code == 200
            assert "mcp-session-id" not in response.headers

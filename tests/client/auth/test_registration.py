"""The registration check: what counts as "the server no longer knows this client"."""

from __future__ import annotations

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull

from secure_mcp.client.auth.registration import oauth_error, still_registered

CLIENT = OAuthClientInformationFull(client_id="c-1")


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, b'{"error": "invalid_client"}', "invalid_client"),
        (400, b'{"error": "invalid_grant"}', "invalid_grant"),
        (400, b"not json", None),
        (400, b'["invalid_client"]', None),
        (400, b'{"error": 1}', None),
        (200, b'{"error": "invalid_client"}', None),
    ],
)
def test_the_oauth_error_of_an_answer(status: int, body: bytes, error: str | None) -> None:
    assert oauth_error(httpx2.Response(status), body) == error


async def test_the_check_is_a_token_request_no_server_can_grant() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(httpx2.QueryParams(request.content.decode())))
        return httpx2.Response(400, json={"error": "invalid_grant"})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        assert await still_registered(http, "http://as/token", CLIENT, "http://127.0.0.1:1/cb")
    [form] = seen
    assert form["grant_type"] == "authorization_code"
    assert form["client_id"] == "c-1"
    assert form["code"].startswith("registration-check-")
    assert 43 <= len(form["code_verifier"]) <= 128  # RFC 7636 4.1
    assert "client_secret" not in form


async def test_no_answer_proves_nothing() -> None:
    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(down)) as http:
        assert await still_registered(http, "http://as/token", CLIENT, "http://127.0.0.1:1/cb")

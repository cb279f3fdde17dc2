"""RFC 7009 revocation: what is sent, and what the user is told when it cannot be done."""

from __future__ import annotations

import base64

import httpx2
import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken

from secure_mcp.client.auth.revocation import Outcome, revoke_tokens

METADATA = OAuthMetadata.model_validate(
    {
        "issuer": "https://as",
        "authorization_endpoint": "https://as/authorize",
        "token_endpoint": "https://as/token",
        "revocation_endpoint": "https://as/revoke",
    }
)
TOKENS = OAuthToken(access_token="access", refresh_token="refresh")


async def _revoke(
    handler: httpx2.MockTransport, client: OAuthClientInformationFull | None, lines: list[str]
) -> Outcome:
    async with httpx2.AsyncClient(transport=handler) as http:
        return await revoke_tokens(http, METADATA, client, TOKENS, lines.append)


async def test_public_client_revokes_refresh_then_access() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(httpx2.QueryParams(request.content.decode())))
        return httpx2.Response(200)

    lines: list[str] = []
    assert (
        await _revoke(
            httpx2.MockTransport(handler), OAuthClientInformationFull(client_id="c"), lines
        )
        is Outcome.REVOKED
    )
    assert seen == [
        {"token": "refresh", "token_type_hint": "refresh_token", "client_id": "c"},
        {"token": "access", "token_type_hint": "access_token", "client_id": "c"},
    ]
    assert lines == []


async def test_access_token_alone_is_revoked() -> None:
    hints: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        hints.append(dict(httpx2.QueryParams(request.content.decode()))["token_type_hint"])
        return httpx2.Response(200)

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(handler)) as http:
        client = OAuthClientInformationFull(client_id="c")
        only_access = OAuthToken(access_token="a")
        assert (
            await revoke_tokens(http, METADATA, client, only_access, [].append) is Outcome.REVOKED
        )
    assert hints == ["access_token"]


@pytest.mark.parametrize(
    ("method", "secret", "authorization", "form"),
    [
        pytest.param(
            "client_secret_basic",
            "s/e&c:r t",
            # RFC 6749 2.3.1: id and secret form-urlencoded before Base64.
            "Basic " + base64.b64encode(b"app%3A1:s%2Fe%26c%3Ar%20t").decode(),
            {},
            id="basic",
        ),
        pytest.param(
            "client_secret_post",
            "s3cret",
            None,
            {"client_id": "app:1", "client_secret": "s3cret"},
            id="post",
        ),
        pytest.param("none", None, None, {"client_id": "app:1"}, id="public"),
    ],
)
async def test_client_authenticates_as_registered(
    method: str, secret: str | None, authorization: str | None, form: dict[str, str]
) -> None:
    # RFC 7009 2.1: the client authenticates at /revoke as it does at /token.
    seen: list[tuple[str | None, dict[str, str]]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        body = dict(httpx2.QueryParams(request.content.decode()))
        seen.append((request.headers.get("authorization"), body))
        return httpx2.Response(200)

    client = OAuthClientInformationFull(
        client_id="app:1", client_secret=secret, token_endpoint_auth_method=method
    )
    assert await _revoke(httpx2.MockTransport(handler), client, []) is Outcome.REVOKED
    assert seen == [
        (authorization, {"token": "refresh", "token_type_hint": "refresh_token", **form}),
        (authorization, {"token": "access", "token_type_hint": "access_token", **form}),
    ]


async def test_refusal_and_unreachable_are_reported() -> None:
    lines: list[str] = []

    def refuse(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(503)

    client = OAuthClientInformationFull(client_id="c")
    assert await _revoke(httpx2.MockTransport(refuse), client, lines) is Outcome.NOT_REVOKED
    assert lines[0] == "The authorization server did not revoke the refresh_token (HTTP 503)."

    def down(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    lines.clear()
    assert await _revoke(httpx2.MockTransport(down), client, lines) is Outcome.NOT_REVOKED
    assert lines[0] == "Could not reach https://as/revoke to revoke the refresh_token: ConnectError"


async def test_no_endpoint_or_no_client_means_local_delete_only() -> None:
    lines: list[str] = []
    async with httpx2.AsyncClient() as http:
        assert await revoke_tokens(http, None, None, TOKENS, lines.append) is Outcome.NOT_REVOKED
        only_access = OAuthToken(access_token="a")
        outcome = await revoke_tokens(http, METADATA, None, only_access, lines.append)
        assert outcome is Outcome.NOT_REVOKED
    assert lines[0].startswith("The authorization server offers no revocation")


@pytest.mark.parametrize("status", [400, 401])
async def test_a_client_the_server_forgot_is_not_told_its_tokens_stay_valid(status: int) -> None:
    """After a reset the server answers `invalid_client`: its tokens are dead, not "valid"."""
    seen: list[str] = []

    def forgot(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(httpx2.QueryParams(request.content.decode()))["token_type_hint"])
        return httpx2.Response(status, json={"error": "invalid_client"})

    lines: list[str] = []
    client = OAuthClientInformationFull(client_id="c")
    assert await _revoke(httpx2.MockTransport(forgot), client, lines) is Outcome.CLIENT_UNKNOWN
    assert seen == ["refresh_token"]  # no point asking about the access token
    assert lines == [
        "The authorization server https://as no longer knows this client (its registration is "
        "gone, e.g. the server's data was reset), so it honours no token issued to it: nothing "
        "is left to revoke there."
    ]

"""No input produces a 500: random and hostile requests against every endpoint."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from secure_mcp.oauth.headers import SecurityHeadersMiddleware
from tests.support.oauth_harness import Flow, Harness, pkce

ENDPOINTS = ["/authorize", "/token", "/register", "/introspect", "/revoke"]
NASTY = [
    b"",
    b"\x00\xff\xfe",
    b"%" * 50,
    b"=&=&==",
    b"code=%00&grant_type=authorization_code",
    b'{"redirect_uris": [null]}',
    b'{"redirect_uris": ["https://a.example/cb"], "grant_types": "authorization_code"}',
    b'{"redirect_uris": ["https://a.example/cb"], "contacts": [1]}',
    b"[" * 5000,
    b"grant_type=refresh_token&refresh_token=" + b"r" * 600 + b"&client_id=x",
]


def _random_body(rng: random.Random) -> bytes:
    alphabet = string.printable + "\u00e9\u2028"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
    return text.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_no_500_for_hostile_bodies(oauth: Harness, endpoint: str) -> None:
    rng = random.Random(endpoint)
    bodies = NASTY + [_random_body(rng) for _ in range(15)]
    for body in bodies:
        for content_type in ("application/x-www-form-urlencoded", "application/json", "text/plain"):
            response = await oauth.http.post(
                endpoint, content=body, headers={"content-type": content_type}
            )
            assert response.status_code < 500, (body, content_type, response.text)


async def test_no_500_for_hostile_queries(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    base = oauth.authorization_url(flow)
    rng = random.Random(7)
    queries = ["%", "%zz", "a=%ff", "client_id=" + "x" * 5000, "&&&", "redirect_uri=%00"]
    queries += [quote(_random_body(rng).decode(), safe="=&%+") for _ in range(20)]
    for query in queries:
        for url in (f"/authorize?{query}", f"{base}&{query}"):
            response = await oauth.http.get(url)
            assert response.status_code < 500, (url, response.text)


async def test_wrong_methods_are_405(oauth: Harness) -> None:
    for endpoint in ["/token", "/register", "/introspect", "/revoke"]:
        assert (await oauth.http.get(endpoint)).status_code == 405
    assert (await oauth.http.put("/authorize")).status_code == 405


async def test_streamed_oversized_bodies(oauth: Harness) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"a" * 1024

    for endpoint, error in [
        ("/register", "invalid_client_metadata"),
        ("/token", "invalid_request"),
    ]:
        response = await oauth.http.post(
            endpoint,
            content=chunks(),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400
        assert response.json()["error"] == error


async def test_raw_non_utf8_form(oauth: Harness) -> None:
    response = await oauth.http.post(
        "/token",
        content=b"grant_type=\xff",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json()["error"] == "invalid_request"


async def test_headers_middleware_passes_other_scopes() -> None:
    seen: list[str] = []

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen.append(scope["type"])

    await SecurityHeadersMiddleware(app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]


FIELDS = [
    "grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret",
    "refresh_token", "scope", "resource", "token", "token_type_hint", "csrf_token", "tx",
    "username", "password", "decision", "state", "response_type", "code_challenge",
    "code_challenge_method",
]  # fmt: skip
ODD_VALUES = ["\u00e9t\u00e9", "\x00", "a" * 1500, "%", " ", "\u2028", "null"]


@pytest.mark.parametrize("value", ODD_VALUES, ids=range(len(ODD_VALUES)))
async def test_no_500_for_odd_field_values(oauth: Harness, value: str) -> None:
    flow = await oauth.new_flow()
    data = dict.fromkeys(FIELDS, value)
    for endpoint in ENDPOINTS:
        response = await oauth.http.post(endpoint, data=data)
        assert response.status_code < 500, (endpoint, response.text)
        response = await oauth.http.post(
            endpoint, data=data, auth=(flow.client["client_id"], value)
        )
        assert response.status_code < 500, (endpoint, response.text)
    query = {**data, "client_id": flow.client["client_id"], "redirect_uri": flow.redirect_uri}
    response = await oauth.http.get("/authorize", params=query)
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            '{"redirect_uris": ["https://a.example/cb"], "client_name": "\\ud800"}',
            id="lone-surrogate",
        ),
        pytest.param('{"redirect_uris": ["https://a.example/\\u0000"]}', id="nul-in-uri"),
        pytest.param(
            '{"redirect_uris": ["https://a.example/cb"], "client_name": "\\u0000"}', id="nul-name"
        ),
        pytest.param(
            '{"redirect_uris": ["https://a.example/cb"], "a": 1e999999}', id="huge-number"
        ),
    ],
)
async def test_no_500_for_odd_json(oauth: Harness, body: str) -> None:
    response = await oauth.http.post(
        "/register", content=body.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code < 500, response.text

"""CORS: browser-based clients may call metadata, /register, /token and /revoke, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.support.oauth_harness import Harness
from tests.support.oauth_server import running_oauth_app

ORIGIN = "https://inspector.example"
TENANT = "http://127.0.0.1:8003/tenant"

# (path, method a browser client uses, request headers it sends)
OPEN = [
    pytest.param(
        "/.well-known/oauth-authorization-server", "GET", "mcp-protocol-version", id="meta"
    ),
    pytest.param("/register", "POST", "content-type, mcp-protocol-version", id="register"),
    pytest.param("/token", "POST", "authorization, content-type", id="token"),
    pytest.param("/revoke", "POST", "authorization, content-type", id="revoke"),
]
CLOSED = [
    pytest.param("/authorize", "GET", id="authorize-get"),
    pytest.param("/authorize", "POST", id="authorize-post"),
    pytest.param("/introspect", "POST", id="introspect"),
    pytest.param("/health", "GET", id="health"),
]


def _preflight(method: str, headers: str | None = None) -> dict[str, str]:
    """The headers of a browser's CORS preflight."""
    sent = {"Origin": ORIGIN, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return sent


def _assert_open(response: httpx2.Response) -> None:
    """Any origin, never credentials."""
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize(("path", "method", "headers"), OPEN)
async def test_preflight_is_answered(oauth: Harness, path: str, method: str, headers: str) -> None:
    response = await oauth.http.options(path, headers=_preflight(method, headers))
    assert response.status_code in {200, 204}
    _assert_open(response)
    allowed = {m.strip() for m in response.headers["access-control-allow-methods"].split(",")}
    assert method in allowed
    allowed_headers = response.headers["access-control-allow-headers"].lower()
    for header in headers.split(","):
        assert header.strip() in allowed_headers


@pytest.mark.parametrize(("path", "method", "headers"), OPEN)
async def test_answers_carry_cors_headers(
    oauth: Harness, path: str, method: str, headers: str
) -> None:
    # errors too: a browser client must be able to read error and error_description
    response = await oauth.http.request(method, path, headers={"Origin": ORIGIN})
    assert response.status_code in {200, 400, 401}
    _assert_open(response)


async def test_token_error_exposes_the_basic_challenge(oauth: Harness) -> None:
    response = await oauth.http.post(
        "/token", data={"grant_type": "authorization_code"}, auth=("nobody", "x"),
        headers={"Origin": ORIGIN},
    )  # fmt: skip
    assert response.status_code == 401
    _assert_open(response)
    assert "www-authenticate" in response.headers["access-control-expose-headers"].lower()


async def test_plain_options_lists_the_methods(oauth: Harness) -> None:
    response = await oauth.http.options("/token")
    assert response.status_code in {200, 204}
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"POST", "OPTIONS"}


async def test_disallowed_preflight_method_is_refused(oauth: Harness) -> None:
    response = await oauth.http.options("/token", headers=_preflight("DELETE"))
    assert response.status_code == 400
    assert "DELETE" not in response.headers.get("access-control-allow-methods", "")


@pytest.mark.parametrize(("path", "method"), CLOSED)
async def test_no_cors_elsewhere(oauth: Harness, path: str, method: str) -> None:
    preflight = await oauth.http.options(path, headers=_preflight(method, "content-type"))
    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    response = await oauth.http.request(method, path, headers={"Origin": ORIGIN})
    assert not any(h.startswith("access-control-") for h in response.headers)


async def test_login_and_consent_pages_have_no_cors(oauth: Harness) -> None:
    flow_client = await oauth.register()
    page = await oauth.http.get(
        "/authorize", params={"client_id": flow_client["client_id"]}, headers={"Origin": ORIGIN}
    )
    assert page.status_code == 400
    assert "access-control-allow-origin" not in page.headers


@pytest.fixture
async def tenant(tmp_path: Path) -> AsyncIterator[Harness]:
    """An issuer with a path: endpoints under /tenant, metadata at two well-known URLs."""
    async with running_oauth_app(tmp_path, issuer=TENANT) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:8003"
        ) as client:
            yield Harness(app, settings, client)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        pytest.param("/.well-known/oauth-authorization-server", "GET", id="root-meta"),
        pytest.param("/.well-known/oauth-authorization-server/tenant", "GET", id="inserted-meta"),
        pytest.param("/tenant/register", "POST", id="register"),
        pytest.param("/tenant/token", "POST", id="token"),
        pytest.param("/tenant/revoke", "POST", id="revoke"),
    ],
)
async def test_issuer_with_path_has_cors_on_both_metadata_urls(
    tenant: Harness, path: str, method: str
) -> None:
    preflight = await tenant.http.options(path, headers=_preflight(method))
    assert preflight.status_code in {200, 204}
    _assert_open(preflight)
    response = await tenant.http.request(method, path, headers={"Origin": ORIGIN})
    _assert_open(response)


async def test_issuer_with_path_keeps_authorize_closed(tenant: Harness) -> None:
    preflight = await tenant.http.options("/tenant/authorize", headers=_preflight("GET"))
    assert "access-control-allow-origin" not in preflight.headers

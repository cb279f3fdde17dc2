"""Interoperability rules of OAuth 2.1 and MCP 2026-07-28 that real clients depend on."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote_plus, urlencode

import httpx2
import pytest

from secure_mcp.common.resource_credentials import ResourceCredentials
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import (
    REDIRECT,
    RESOURCE,
    Flow,
    Harness,
    code_form,
    pkce,
    query_of,
    running_harness,
)
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME, running_oauth_app

APP_REDIRECT = "https://app.example/callback"


# --- OAuth 2.1 4.1.3: the token request no longer needs redirect_uri ------------------------


async def test_code_exchange_without_redirect_uri_is_accepted(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    response = await oauth.token(code_form(flow, redirect_uri=None))
    assert response.status_code == 200, response.text
    assert (await oauth.introspect(response.json()["access_token"]))["active"] is True


async def test_code_exchange_with_another_redirect_uri_is_refused(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    other = await oauth.token(code_form(flow, redirect_uri="http://127.0.0.1:33333/other"))
    assert other.status_code == 400
    assert other.json()["error"] == "invalid_grant"
    # the code survives for its rightful owner
    assert (await oauth.token(code_form(flow))).status_code == 200


# --- RFC 6749 3.1 / 3.2: unknown parameters are ignored, also when repeated ------------------


async def test_unknown_token_parameters_are_ignored_even_repeated(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = urlencode([*code_form(flow).items(), ("foo", "1"), ("foo", "2"), ("nonce", "n")])
    response = await oauth.http.post(
        "/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200, response.text


async def test_known_token_parameters_still_must_not_repeat(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = urlencode([*code_form(flow).items(), ("code_verifier", flow.verifier)])
    response = await oauth.http.post(
        "/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "code_verifier" in response.json()["error_description"]


async def test_unknown_authorize_parameters_are_ignored_even_repeated(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    url = oauth.authorization_url(flow) + "&prompt=consent&prompt=login&ui_locales=en"
    location = await authorize_headlessly(
        oauth.http, url, username=TEST_USERNAME, password=TEST_PASSWORD
    )
    assert "code" in query_of(location)


async def test_unknown_revoke_and_introspect_parameters_are_ignored(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    tokens = (await oauth.redeem(flow)).json()
    introspected = await oauth.http.post(
        "/introspect",
        content=urlencode([("token", tokens["access_token"]), ("x", "1"), ("x", "2")]),
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=oauth.resource_auth(),
    )
    assert introspected.json()["active"] is True
    revoked = await oauth.http.post(
        "/revoke",
        content=urlencode(
            [
                ("token", tokens["refresh_token"]),
                ("client_id", flow.client["client_id"]),
                ("extra", "a"),
                ("extra", "b"),
            ]
        ),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert revoked.status_code == 200
    assert await oauth.introspect(tokens["access_token"]) == {"active": False}


async def test_repeated_known_revoke_parameter_is_invalid_request(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    response = await oauth.http.post(
        "/revoke",
        content=urlencode(
            [("token", "a"), ("token", "b"), ("client_id", flow.client["client_id"])]
        ),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# --- RFC 8707 2: several resources in one request are invalid_target -------------------------


async def test_repeated_resource_at_authorize_is_invalid_target(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    url = oauth.authorization_url(flow) + "&resource=" + quote_plus("http://127.0.0.1:8001/mcp")
    response = await oauth.http.get(url)
    assert response.status_code == 302
    params = query_of(response.headers["location"])
    assert params["error"] == "invalid_target"
    assert params["state"] == flow.state
    assert "code" not in params


async def test_repeated_resource_at_token_is_invalid_target(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    body = urlencode([*code_form(flow).items(), ("resource", RESOURCE)])
    response = await oauth.http.post(
        "/token", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"
    assert (await oauth.token(code_form(flow))).status_code == 200


# --- OAuth 2.1 4.1.1: redirect_uri may be omitted with one non-loopback redirect URI ---------


async def test_redirect_uri_may_be_omitted_with_one_https_redirect(oauth: Harness) -> None:
    flow = Flow(await oauth.register(redirect_uris=[APP_REDIRECT]), *pkce())
    flow.redirect_uri = APP_REDIRECT
    location = await oauth.authorize(flow, redirect_uri=None)
    assert location.startswith(APP_REDIRECT + "?code=")
    # the code is bound to the registered URI: without it, or with it, at /token
    assert (await oauth.token(code_form(flow, redirect_uri=None))).status_code == 200
    again = Flow(flow.client, *pkce(), redirect_uri=APP_REDIRECT)
    await oauth.authorize(again, redirect_uri=None)
    assert (await oauth.token(code_form(again))).status_code == 200


async def test_omitted_redirect_uri_error_goes_to_the_registered_one(oauth: Harness) -> None:
    flow = Flow(await oauth.register(redirect_uris=[APP_REDIRECT]), *pkce())
    # allowed once first: a fresh client's https redirect gets no errors (RFC 9700 4.11.2,
    # tests/oauth/test_open_redirect.py)
    await oauth.authorize(Flow(flow.client, *pkce(), redirect_uri=APP_REDIRECT))
    response = await oauth.http.get(
        oauth.authorization_url(flow, redirect_uri=None, code_challenge=None)
    )
    assert response.status_code == 302
    assert response.headers["location"].startswith(APP_REDIRECT + "?")
    assert query_of(response.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize(
    "redirect_uris",
    [
        pytest.param([REDIRECT], id="one-loopback"),
        pytest.param([APP_REDIRECT, "https://app.example/other"], id="two-https"),
    ],
)
async def test_redirect_uri_required_otherwise(oauth: Harness, redirect_uris: list[str]) -> None:
    flow = Flow(await oauth.register(redirect_uris=redirect_uris), *pkce())
    response = await oauth.http.get(oauth.authorization_url(flow, redirect_uri=None))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "no redirect_uri" in response.text


# --- refresh_token missing, 405 Allow, no-store on the code redirect -------------------------


async def test_refresh_without_refresh_token_is_invalid_request(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    await oauth.redeem(flow)
    response = await oauth.token(
        {"grant_type": "refresh_token", "client_id": flow.client["client_id"]}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "refresh_token" in response.json()["error_description"]


ALLOWED = [
    pytest.param("PUT", "/authorize", {"GET", "HEAD", "POST"}, id="authorize"),
    pytest.param("DELETE", "/authorize", {"GET", "HEAD", "POST"}, id="authorize-delete"),
    pytest.param("GET", "/token", {"POST", "OPTIONS"}, id="token"),
    pytest.param("GET", "/register", {"POST", "OPTIONS"}, id="register"),
    pytest.param("GET", "/revoke", {"POST", "OPTIONS"}, id="revoke"),
    pytest.param("GET", "/introspect", {"POST"}, id="introspect"),
    pytest.param(
        "POST", "/.well-known/oauth-authorization-server", {"GET", "HEAD", "OPTIONS"}, id="meta"
    ),
    pytest.param("POST", "/health", {"GET", "HEAD"}, id="health"),
]


@pytest.mark.parametrize(("method", "path", "allowed"), ALLOWED)
async def test_405_lists_every_allowed_method(
    oauth: Harness, method: str, path: str, allowed: set[str]
) -> None:
    response = await oauth.http.request(method, path)
    assert response.status_code == 405
    listed = {m.strip() for m in response.headers["allow"].split(",")}
    assert listed == allowed  # RFC 9110 15.5.6


async def test_code_redirect_is_not_cacheable(oauth: Harness) -> None:
    flow = Flow(await oauth.register(redirect_uris=[APP_REDIRECT]), *pkce())
    flow.redirect_uri = APP_REDIRECT
    await oauth.authorize(flow)  # the consent is remembered for this user
    again = Flow(flow.client, *pkce(), redirect_uri=APP_REDIRECT)
    page = await oauth.http.get(oauth.authorization_url(again))
    fields = dict(re.findall(r'name="(csrf_token|tx)" value="([^"]*)"', page.text))
    response = await oauth.http.post(  # signed in: the code at once, without the consent page
        "/authorize", data={**fields, "username": TEST_USERNAME, "password": TEST_PASSWORD}
    )
    assert response.status_code == 303
    assert "code" in query_of(response.headers["location"])
    assert response.headers["cache-control"] == "no-store"


async def test_consent_redirect_and_error_redirect_are_not_cacheable(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    seen: list[httpx2.Response] = []

    async def record(response: httpx2.Response) -> None:
        if response.is_redirect and "code=" in response.headers.get("location", ""):
            seen.append(response)

    oauth.http.event_hooks["response"].append(record)
    try:
        await oauth.authorize(flow)
    finally:
        oauth.http.event_hooks["response"].remove(record)
    assert [r.status_code for r in seen] == [303]
    assert seen[0].headers["cache-control"] == "no-store"
    failed = await oauth.http.get(oauth.authorization_url(flow, response_type="token"))
    assert failed.status_code == 302
    assert failed.headers["cache-control"] == "no-store"


# --- RFC 6749 2.3.1: Basic credentials are form-urlencoded -----------------------------------

AWKWARD_ID = "rs: 1+%é"
AWKWARD_SECRET = "p%2B a:b+ü%"


@pytest.fixture
async def awkward(tmp_path: Path) -> AsyncIterator[Harness]:
    """A server whose resource server has an id and secret needing form encoding."""
    credentials = ResourceCredentials(AWKWARD_ID, AWKWARD_SECRET)
    async with running_oauth_app(tmp_path, introspection_credentials=credentials) as (app, s):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=s.issuer) as client:
            yield Harness(app, s, client)


def _basic(client_id: str, secret: str, encode: bool) -> str:
    """An Authorization header value, the id and secret form-encoded first when `encode`."""
    if encode:
        client_id, secret = quote_plus(client_id, safe=""), quote_plus(secret, safe="")
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_form_encoded_basic_credentials_are_decoded(awkward: Harness) -> None:
    flow = await awkward.new_flow()
    token = (await awkward.redeem(flow)).json()["access_token"]
    answer = await awkward.http.post(
        "/introspect",
        data={"token": token},
        headers={"Authorization": _basic(AWKWARD_ID, AWKWARD_SECRET, encode=True)},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is True
    # "+" is a space in application/x-www-form-urlencoded: a raw "+" is not the secret's "+"
    raw = await awkward.http.post(
        "/introspect",
        data={"token": token},
        headers={"Authorization": _basic(AWKWARD_ID, AWKWARD_SECRET, encode=False)},
    )
    assert raw.status_code == 401


# --- well-known scopes sent by convention are ignored when not offered ------------------------


@pytest.mark.parametrize(
    ("scope", "granted"),
    [
        pytest.param("weather:read offline_access", "weather:read", id="with-offline-access"),
        pytest.param("openid weather:read", "weather:read", id="with-openid"),
        pytest.param("offline_access openid", "weather:read", id="only-ignored"),
    ],
)
async def test_offline_access_and_openid_are_ignored_at_authorize(
    oauth: Harness, scope: str, granted: str
) -> None:
    flow = Flow(await oauth.register(), *pkce())
    location = await oauth.authorize(flow, scope=scope)
    assert "code=" in location, location
    body = (await oauth.redeem(flow)).json()
    assert body["scope"] == granted
    assert "refresh_token" in body  # from the registered grant type, not from offline_access


async def test_other_unknown_scopes_stay_invalid_scope(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    location = await oauth.authorize(flow, scope="offline_access admin")
    assert query_of(location)["error"] == "invalid_scope"


async def test_offline_access_and_openid_are_ignored_at_registration(oauth: Harness) -> None:
    client = await oauth.register(scope="weather:read offline_access openid")
    assert client["scope"] == "weather:read"
    only = await oauth.register(scope="openid offline_access")
    assert "scope" not in only  # as if no scope was sent: every scope the server offers
    bad = await oauth.http.post(
        "/register", json={"redirect_uris": [REDIRECT], "scope": "offline_access admin"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_client_metadata"


async def test_ignored_scopes_at_refresh(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    tokens = (await oauth.redeem(flow)).json()
    response = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": flow.client["client_id"],
            "scope": "weather:read offline_access",
        }
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "weather:read"


async def test_offline_access_is_kept_when_the_server_offers_it(tmp_path: Path) -> None:
    scopes = ("weather:read", "offline_access")
    async with running_harness(tmp_path, scopes=scopes) as oauth:
        flow = Flow(await oauth.register(), *pkce())
        await oauth.authorize(flow, scope="weather:read offline_access")
        assert (await oauth.redeem(flow)).json()["scope"] == "weather:read offline_access"


# --- MCP: resource URIs differing only in scheme/host case or default port are one resource ---


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("HTTP://localhost:8000/mcp", id="scheme-case"),
        pytest.param("http://LOCALHOST:8000/mcp", id="host-case"),
    ],
)
async def test_resource_case_variants_are_the_same_resource(tmp_path: Path, sent: str) -> None:
    configured = "http://localhost:8000/mcp"
    async with running_oauth_app(tmp_path, resources=(configured,)) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            oauth = Harness(app, settings, client)
            flow = Flow(await oauth.register(), *pkce())
            location = await oauth.authorize(flow, resource=sent)
            assert "code=" in location, location
            body = await oauth.token(code_form(flow, resource=sent.swapcase()[:4] + sent[4:]))
            assert body.status_code == 200, body.text
            token = body.json()["access_token"]
            claims = await oauth.introspect(token, configured)
            assert claims["aud"] == configured  # issued in canonical form


async def test_configured_resources_are_canonical(tmp_path: Path) -> None:
    configured = ("HTTPS://MCP.Example.COM:443/Weather", "http://127.0.0.1:80/mcp")
    async with running_oauth_app(tmp_path, resources=configured) as (app, settings):
        assert settings.resources == ("https://mcp.example.com/Weather", "http://127.0.0.1/mcp")
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            oauth = Harness(app, settings, client)
            flow = Flow(await oauth.register(), *pkce())
            # default port spelled out, and the path's case kept (it is case-sensitive)
            await oauth.authorize(flow, resource="https://mcp.example.com:443/Weather")
            body = (await oauth.token(code_form(flow, resource=None))).json()
            aud = (await oauth.introspect(body["access_token"], settings.resources[0]))["aud"]
            assert aud == "https://mcp.example.com/Weather"
            other = Flow(flow.client, *pkce())
            location = await oauth.authorize(other, resource="https://mcp.example.com/weather")
            assert query_of(location)["error"] == "invalid_target"


# --- the sign-in cookie is Secure whenever the issuer is https - --------------------------------


@pytest.mark.parametrize(
    ("issuer", "secure"),
    [
        pytest.param("https://auth.example", True, id="https"),
        pytest.param("HTTPS://auth.example", True, id="https-upper-case"),
        pytest.param("http://127.0.0.1:8003", False, id="loopback-http"),
    ],
)
async def test_session_cookie_is_secure_with_an_https_issuer(
    tmp_path: Path, issuer: str, secure: bool
) -> None:
    async with running_oauth_app(tmp_path, issuer=issuer) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=issuer) as client:
            oauth = Harness(app, settings, client)
            flow = Flow(await oauth.register(), *pkce())
            page = await client.get(oauth.authorization_url(flow).replace(issuer, ""))
            assert page.status_code == 200, page.text
            cookie = page.headers["set-cookie"].lower()
            assert cookie.startswith("signin-")  # one per sign-in (tests/oauth/test_signin.py)
            assert ("; secure" in cookie) is secure
            assert "httponly" in cookie
            assert "samesite=strict" in cookie

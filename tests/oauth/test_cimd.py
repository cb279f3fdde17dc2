"""Client ID metadata documents through the whole server: authorize, token, refresh, revoke."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select

from secure_mcp.oauth.app import build_app
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database
from tests.support.cimd_server import DocumentHost, FakeClock, FakeResolver, document
from tests.support.oauth_harness import REDIRECT, RESOURCE, Flow, Harness, pkce, query_of
from tests.support.oauth_server import IN_PROCESS_ISSUER, TEST_PASSWORD, TEST_USERNAME
from tests.support.sdk_client import sdk_sign_in

PUBLIC_IP = "93.184.215.14"
URL = "https://app.example/oauth/client.json"


@dataclass
class Cimd:
    """The server in process with a fake document host, DNS and clock."""

    oauth: Harness
    host: DocumentHost
    resolver: FakeResolver
    clock: FakeClock

    def publish(self, url: str = URL, **fields: Any) -> str:
        """Serve a valid document for `url` (fields override)."""
        self.host.serve(httpx2.URL(url).path, document(url, **fields))
        return url

    def flow(self, url: str = URL, redirect_uri: str = REDIRECT) -> Flow:
        """A new authorization for the document client `url`."""
        verifier, challenge = pkce()
        return Flow({"client_id": url}, verifier, challenge, redirect_uri=redirect_uri)

    async def row(self, client_id: str = URL) -> Client | None:
        """The stored client row, if any."""
        db = build_db(self.oauth.settings)
        async with db.read() as session:
            found = await session.scalar(select(Client).where(Client.client_id == client_id))
        await db.close()
        return found


def build_db(settings: OAuthSettings) -> Database:
    """A second connection to the server's database, for inspection."""
    return Database(settings.data_dir)


@pytest.fixture
async def cimd(tmp_path: Path) -> AsyncIterator[Cimd]:
    """The app with CIMD seams; app.example resolves to a public address."""
    host, clock = DocumentHost(), FakeClock()
    resolver = FakeResolver({"app.example": [PUBLIC_IP], "evil.example": ["10.0.0.7"]})
    settings = OAuthSettings(
        data_dir=tmp_path / "oauth-data",
        demo_username=TEST_USERNAME,
        demo_password=TEST_PASSWORD,
        issuer=IN_PROCESS_ISSUER,
    )
    app = build_app(
        settings, FetchSeams(resolver=resolver, transport=host.transport(), clock=clock)
    )
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            yield Cimd(Harness(app, settings, http), host, resolver, clock)


async def test_metadata_advertises_cimd(cimd: Cimd) -> None:
    meta = (await cimd.oauth.http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["client_id_metadata_document_supported"] is True


async def test_full_flow_for_a_document_client(cimd: Cimd) -> None:
    oauth = cimd.oauth
    flow = cimd.flow(cimd.publish())
    assert await cimd.row() is None  # no row before the first authorization
    location = await oauth.authorize(flow)
    assert query_of(location)["iss"] == oauth.settings.issuer
    row = await cimd.row()
    assert row is not None
    assert row.registered["client_id_metadata_document"] is True
    assert row.secret_hash is None
    assert row.token_endpoint_auth_method == "none"

    tokens = await oauth.redeem(flow)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    info = await oauth.introspect(body["access_token"])
    assert (info["active"], info["client_id"]) == (True, URL)

    refreshed = await oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": URL}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    revoked = await oauth.http.post(
        "/revoke", data={"token": new["refresh_token"], "client_id": URL}
    )
    assert revoked.status_code == 200
    assert await oauth.introspect(new["access_token"]) == {"active": False}
    # one fetch served the authorization, the consent POST, /token, refresh and revocation
    assert len(cimd.host.requests) == 1


async def test_second_authorization_updates_the_row(cimd: Cimd) -> None:
    await cimd.oauth.authorize(cimd.flow(cimd.publish()))
    first = await cimd.row()
    cimd.publish(client_name="Renamed")
    cimd.clock.advance(301)
    await cimd.oauth.authorize(cimd.flow())
    second = await cimd.row()
    assert first is not None
    assert second is not None
    assert (second.client_name, second.issued_at) == ("Renamed", first.issued_at)


async def test_refresh_needs_the_grant_in_the_document(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish(grant_types=["authorization_code"]))
    await cimd.oauth.authorize(flow)
    body = (await cimd.oauth.redeem(flow)).json()
    assert "refresh_token" not in body


BAD_DOCUMENTS = [
    pytest.param(
        {"client_id": "https://app.example/other.json"},
        "does not equal its URL",
        id="client-id-mismatch",
    ),
    pytest.param({"client_id": URL + "/"}, "does not equal its URL", id="client-id-trailing-slash"),
    pytest.param(
        {"redirect_uris": None}, "redirect_uris: at least one is required", id="no-redirect-uris"
    ),
    pytest.param({"redirect_uris": []}, "redirect_uris", id="empty-redirect-uris"),
    pytest.param(
        {"redirect_uris": ["javascript:alert(1)"]}, "absolute URL with a host", id="js-redirect"
    ),
    pytest.param({"redirect_uris": ["http://app.example/cb"]}, "must be https", id="http-redirect"),
    pytest.param({"redirect_uris": ["https://app.example/*"]}, "wildcard", id="wildcard-redirect"),
    pytest.param(
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a/j"},
        "private_key_jwt is not supported",
        id="private-key-jwt",
    ),
    pytest.param(
        {"token_endpoint_auth_method": "client_secret_basic"},
        "must be a public client",
        id="secret-method",
    ),
    pytest.param(
        {"client_secret": "s3cret"}, "must not contain a client secret", id="embedded-secret"
    ),
    pytest.param({"scope": "admin"}, "unknown scope: admin", id="unknown-scope"),
    pytest.param({"grant_types": ["client_credentials"]}, "grant_types", id="bad-grant"),
    pytest.param({"client_name": "x" * 500}, "client_name", id="long-name"),
    # MCP client ID metadata documents: client_name is required
    pytest.param({"client_name": None}, "must have a client_name", id="no-name"),
    pytest.param({"client_name": " "}, "must have a client_name", id="blank-name"),
    pytest.param({"client_name": 7}, "must have a client_name", id="name-not-text"),
    pytest.param({"scope": "offline_access admin"}, "unknown scope: admin", id="scope-admin"),
]


async def test_conventional_scopes_in_a_document_are_ignored(cimd: Cimd) -> None:
    # a document is shared across servers: offline_access / openid there are not errors here
    flow = cimd.flow(cimd.publish(scope="weather:read offline_access openid"))
    location = await cimd.oauth.authorize(flow, scope="weather:read offline_access")
    assert "code=" in location, location
    assert (await cimd.oauth.redeem(flow)).json()["scope"] == "weather:read"


@pytest.mark.parametrize(("fields", "message"), BAD_DOCUMENTS)
async def test_bad_document_is_an_error_page_and_invalid_client(
    cimd: Cimd, fields: dict[str, Any], message: str
) -> None:
    cimd.host.serve("/oauth/client.json", document(URL, **fields))
    flow = cimd.flow()
    page = await cimd.oauth.http.get(cimd.oauth.authorization_url(flow))
    assert page.status_code == 400
    assert "location" not in page.headers  # never a redirect
    assert "client ID metadata document" in page.text
    assert message in page.text.replace("&#39;", "'")
    token = await cimd.oauth.redeem(flow, code="whatever")
    assert token.status_code == 401
    assert token.json()["error"] == "invalid_client"
    assert message in token.json()["error_description"]
    assert "www-authenticate" not in token.headers


BAD_URLS = [
    pytest.param("http://app.example/client.json", "must be https", id="http"),
    pytest.param("https://app.example", "must have a path", id="no-path"),
    pytest.param("https://app.example/", "must have a path", id="root-path"),
    pytest.param("https://app.example/a/../client.json", ". or .. segments", id="dot-segments"),
    pytest.param("https://app.example/client.json?x=1", "no query or fragment", id="query"),
    pytest.param("https://user@app.example/client.json", "no user info", id="userinfo"),
    pytest.param("https://app.example/" + "a" * 2100, "too long", id="too-long"),
    pytest.param("https://\u00e9.example/c.json", "not ASCII", id="non-ascii"),
    pytest.param("https://app.example:99999/c.json", "malformed (host or port)", id="bad-port"),
    pytest.param("https://app.example:0/c.json", "malformed (host or port)", id="port-zero"),
    pytest.param("https://[::1/c.json", "malformed (host or port)", id="bad-ipv6"),
    pytest.param("https://evil.example/client.json", "not resolve to a public", id="private-host"),
    pytest.param("https://unknown.example/client.json", "does not resolve", id="unresolvable"),
    pytest.param("https://app.example/missing.json", "HTTP 404", id="not-found"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
async def test_bad_client_id_urls(cimd: Cimd, url: str, message: str) -> None:
    page = await cimd.oauth.http.get(cimd.oauth.authorization_url(cimd.flow(url)))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert message in page.text
    assert "10.0.0.7" not in page.text  # internal DNS answers are not shown


async def test_foreign_redirect_uri_is_an_error_page(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish(), redirect_uri="https://attacker.example/cb")
    page = await cimd.oauth.http.get(cimd.oauth.authorization_url(flow))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "not registered for this application" in page.text


async def test_loopback_redirect_matches_any_port(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish(), redirect_uri="http://127.0.0.1:45678/callback")
    location = await cimd.oauth.authorize(flow)
    assert location.startswith("http://127.0.0.1:45678/callback?code=")


async def _sign_in(cimd: Cimd, flow: Flow) -> httpx2.Response:
    """Open the login page (always shown first) and sign in; the 303 that follows."""
    oauth = cimd.oauth
    login = await oauth.http.get(oauth.authorization_url(flow))
    assert "Sign in" in login.text
    csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    tx = login.text.split('name="tx" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "tx": tx, "username": TEST_USERNAME, "password": TEST_PASSWORD}
    resumed = await oauth.http.post("/authorize", data=form)
    assert resumed.status_code == 303
    return resumed


async def _consent_page(cimd: Cimd, flow: Flow) -> str:
    """Sign in, then return the consent page's HTML."""
    resumed = await _sign_in(cimd, flow)
    page = await cimd.oauth.http.get(resumed.headers["location"])
    assert "Allow access?" in page.text
    return page.text


async def test_consent_page_warns_about_loopback_impersonation(cimd: Cimd) -> None:
    page = await _consent_page(cimd, cimd.flow(cimd.publish(client_name="Claude <b>")))
    assert "Claude &lt;b&gt;" in page  # the document's name, escaped
    assert "published at <code>app.example</code>" in page
    assert "<code>127.0.0.1:33333</code>" in page  # the redirect host
    assert "Warning:" in page
    assert "Any local program can claim" in page


async def test_consent_page_no_warning_for_https_redirect(cimd: Cimd) -> None:
    url = cimd.publish(redirect_uris=["https://app.example/cb"])
    page = await _consent_page(cimd, cimd.flow(url, redirect_uri="https://app.example/cb"))
    assert "published at <code>app.example</code>" in page
    assert "Warning:" not in page


async def test_remembered_consent_still_shows_the_impersonation_warning(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish())  # redirect to loopback, document hosted elsewhere
    assert (await cimd.oauth.authorize(flow)).startswith("http://127.0.0.1:33333/callback?code=")
    again = await _consent_page(cimd, flow)  # signed in again, then asked again
    assert "Warning:" in again


async def test_remembered_consent_skips_the_page_without_a_warning(cimd: Cimd) -> None:
    url = cimd.publish(redirect_uris=["https://app.example/cb"])
    flow = cimd.flow(url, redirect_uri="https://app.example/cb")
    await cimd.oauth.authorize(flow)
    again = await _sign_in(cimd, flow)  # the password is asked every time; the consent page not
    assert again.headers["location"].startswith("https://app.example/cb?code=")


async def test_registered_client_consent_has_no_document_host(cimd: Cimd) -> None:
    verifier, challenge = pkce()
    flow = Flow(await cimd.oauth.register(), verifier, challenge)
    page = await _consent_page(cimd, flow)
    assert "metadata document" not in page
    assert "Warning:" not in page


async def test_cache_honoured_then_expired(cimd: Cimd) -> None:
    cimd.host.serve(
        "/oauth/client.json",
        document(URL),
        headers={"content-type": "application/json", "cache-control": "max-age=600"},
    )
    oauth = cimd.oauth
    url = oauth.authorization_url(cimd.flow())
    assert (await oauth.http.get(url)).status_code == 200
    cimd.host.serve("/oauth/client.json", document(URL, client_name="Changed"))
    cimd.clock.advance(599)
    page = await oauth.http.get(url)
    assert "Document client" in page.text
    assert len(cimd.host.requests) == 1
    cimd.clock.advance(2)
    page = await oauth.http.get(url)
    assert "Changed" in page.text
    assert len(cimd.host.requests) == 2


async def test_removed_document_stops_refresh_after_expiry(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish())
    await cimd.oauth.authorize(flow)
    body = (await cimd.oauth.redeem(flow)).json()
    del cimd.host.documents["/oauth/client.json"]
    cimd.clock.advance(301)  # the default lifetime without cache headers
    refreshed = await cimd.oauth.token(
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": URL}
    )
    assert refreshed.status_code == 401
    assert "HTTP 404" in refreshed.json()["error_description"]


async def test_document_deleted_between_login_and_consent(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish())
    oauth = cimd.oauth
    login = await oauth.http.get(oauth.authorization_url(flow))
    cimd.host.serve("/oauth/client.json", document(URL, client_id="https://x.example/y"))
    cimd.clock.advance(301)
    csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
    tx = login.text.split('name="tx" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "tx": tx, "username": TEST_USERNAME, "password": TEST_PASSWORD}
    page = await oauth.http.post("/authorize", data=form)
    assert page.status_code == 400
    assert "does not equal its URL" in page.text


async def test_sdk_client_provider_uses_the_document(cimd: Cimd) -> None:
    """The MCP SDK's OAuthClientProvider with client_metadata_url: no registration, one fetch."""
    oauth = cimd.oauth
    url = cimd.publish()
    sdk = sdk_sign_in(oauth, client_metadata_url=url)
    storage = sdk.storage
    async with httpx2.AsyncClient(transport=sdk.transport, auth=sdk.provider) as client:
        response = await client.post(RESOURCE, json={})
    assert response.status_code == 200, response.text
    assert [query_of(opened)["client_id"] for opened in sdk.opened] == [url]
    assert storage.tokens is not None
    assert (await oauth.introspect(storage.tokens.access_token))["client_id"] == url
    assert len(cimd.host.requests) == 1


async def test_a_document_with_a_spoofed_name_is_refused(cimd: Cimd) -> None:
    flow = cimd.flow(cimd.publish(client_name="Claude\u202eedualC"))
    page = await cimd.oauth.http.get(cimd.oauth.authorization_url(flow))
    assert page.status_code == 400
    assert "client_name: Value error, invisible or text-direction characters" in page.text
    assert "(U+202E)" in page.text


async def test_a_fresh_document_client_gets_no_errors_at_its_https_redirect(cimd: Cimd) -> None:
    url = cimd.publish(redirect_uris=["https://app.example/cb"])
    flow = cimd.flow(url, redirect_uri="https://app.example/cb")
    bad = cimd.oauth.authorization_url(flow, code_challenge=None)
    page = await cimd.oauth.http.get(bad)
    assert page.status_code == 400  # RFC 9700 4.11.2: nobody allowed it yet
    assert "location" not in page.headers
    await cimd.oauth.authorize(flow)
    redirected = await cimd.oauth.http.get(bad)
    assert redirected.status_code == 302
    assert redirected.headers["location"].startswith("https://app.example/cb?error=")

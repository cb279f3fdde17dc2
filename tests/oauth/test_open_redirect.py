"""Not an open redirector (RFC 9700 4.11.2): a fresh client's redirect URI gets no errors.

"Freshly registered" means no user has allowed the client yet (`clients.authorized_at` unset):
anyone can register a client whose redirect URI is any https site, and then use this server's
well-known address to bounce a victim there with a crafted error. Until a user has allowed
the client, errors found before sign-in are shown on the server's own page. Loopback redirect
URIs reach only this machine and keep receiving errors (RFC 6749 4.1.2.1, RFC 8252 7.3).
"""

from __future__ import annotations

import pytest

from tests.support.oauth_harness import Flow, Harness, consent_page, form, pkce, query_of

HTTPS_REDIRECT = "https://app.example/cb"
BAD_REQUESTS = [
    pytest.param({"code_challenge": None}, "code_challenge", id="no-pkce"),
    pytest.param({"response_type": "token"}, "response_type", id="implicit"),
    pytest.param({"scope": "admin"}, "scope", id="unknown-scope"),
    pytest.param({"resource": "https://elsewhere.example/mcp"}, "resource", id="unknown-resource"),
]


async def https_client(oauth: Harness) -> Flow:
    client = await oauth.register(redirect_uris=[HTTPS_REDIRECT])
    return Flow(client, *pkce(), redirect_uri=HTTPS_REDIRECT)


@pytest.mark.parametrize(("overrides", "named"), BAD_REQUESTS)
async def test_a_fresh_https_client_gets_errors_on_a_page(
    oauth: Harness, overrides: dict[str, str | None], named: str
) -> None:
    flow = await https_client(oauth)
    response = await oauth.http.get(oauth.authorization_url(flow, **overrides))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "This authorization request is invalid:" in response.text
    assert named in response.text
    assert "app.example" not in response.text.split("<body>")[1]  # no link to follow either


@pytest.mark.parametrize(("overrides", "named"), BAD_REQUESTS)
async def test_once_allowed_its_errors_are_redirected(
    oauth: Harness, overrides: dict[str, str | None], named: str
) -> None:
    flow = await https_client(oauth)
    await oauth.authorize(flow)  # a user allowed it
    response = await oauth.http.get(oauth.authorization_url(flow, **overrides))
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(HTTPS_REDIRECT + "?error=")
    assert query_of(location)["state"] == flow.state


@pytest.mark.parametrize(("overrides", "named"), BAD_REQUESTS)
async def test_a_loopback_redirect_always_gets_errors(
    oauth: Harness, overrides: dict[str, str | None], named: str
) -> None:
    flow = Flow(await oauth.register(), *pkce())  # fresh, redirect http://127.0.0.1:33333/...
    response = await oauth.http.get(oauth.authorization_url(flow, **overrides))
    assert response.status_code == 302
    assert response.headers["location"].startswith(flow.redirect_uri + "?error=")


async def test_after_sign_in_a_denial_goes_to_a_fresh_client(oauth: Harness) -> None:
    flow = await https_client(oauth)
    consent = await consent_page(oauth, flow)  # the user signed in and saw where it goes
    denied = await oauth.http.post("/authorize", data=form(consent, decision="deny"))
    assert denied.status_code == 303
    assert denied.headers["location"].startswith(HTTPS_REDIRECT + "?error=access_denied")

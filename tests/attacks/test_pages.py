"""Attacks on the login and consent pages: CSRF, clickjacking and script injection."""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin

import httpx2
import pytest

from tests.support.flows import Flow, LiveAuth, Stack, live_auth, query_of

pytestmark = pytest.mark.process

XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def hidden(html: str, name: str) -> str:
    """The value of the hidden input `name`."""
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def assert_not_framable(response: httpx2.Response) -> None:
    """RFC 9700 4.16: the page refuses every frame ancestor, both old and new style."""
    assert response.headers["x-frame-options"] == "DENY"
    directives = [d.strip() for d in response.headers["content-security-policy"].split(";")]
    assert "frame-ancestors 'none'" in directives
    assert response.headers["referrer-policy"] == "no-referrer"  # codes never leak via Referer


async def login_page(auth: LiveAuth, **metadata: str) -> tuple[Flow, httpx2.Response]:
    """A registered client's authorization request, answered with the login page."""
    flow = await auth.start(**metadata)
    page = await auth.http.get(auth.authorization_url(flow))
    assert page.status_code == 200, page.text
    return flow, page


async def consent_page(auth: LiveAuth, **metadata: str) -> httpx2.Response:
    """Sign in on the login page and open the consent page."""
    _, page = await login_page(auth, **metadata)
    form = {"csrf_token": hidden(page.text, "csrf_token"), "tx": hidden(page.text, "tx")}
    form.update(username=auth.oauth.username, password=auth.oauth.password)
    login = await auth.http.post(f"{auth.oauth.issuer}/authorize", data=form)
    assert login.status_code == 303
    consent = await auth.http.get(urljoin(auth.oauth.issuer, login.headers["location"]))
    assert 'value="allow"' in consent.text
    return consent


async def post_decision(auth: LiveAuth, csrf: str | None, tx: str) -> httpx2.Response:
    """POST the consent form (Allow) with `csrf` (None: omitted)."""
    data = {"tx": tx, "decision": "allow"}
    if csrf is not None:
        data["csrf_token"] = csrf
    return await auth.http.post(f"{auth.oauth.issuer}/authorize", data=data)


def assert_csrf_refused(response: httpx2.Response) -> None:
    """403 with the error page, and no code sent anywhere."""
    assert response.status_code == 403, response.text
    assert "location" not in response.headers
    assert "The form has expired or was forged." in response.text


async def test_csrf_forged_token_on_consent(auth: LiveAuth) -> None:
    consent = await consent_page(auth)
    assert_csrf_refused(await post_decision(auth, "forged", hidden(consent.text, "tx")))


async def test_csrf_missing_token_on_consent(auth: LiveAuth) -> None:
    consent = await consent_page(auth)
    assert_csrf_refused(await post_decision(auth, None, hidden(consent.text, "tx")))


async def test_csrf_token_from_another_session_on_consent(auth: LiveAuth, stack: Stack) -> None:
    victim_consent = await consent_page(auth)
    async with live_auth(stack.oauth, stack.weather.url) as attacker:
        attacker_consent = await consent_page(attacker)
        # The attacker's valid token, replayed in the victim's session (and the other way).
        forged = await post_decision(
            auth, hidden(attacker_consent.text, "csrf_token"), hidden(victim_consent.text, "tx")
        )
        assert_csrf_refused(forged)
        crossed = await post_decision(
            attacker, hidden(attacker_consent.text, "csrf_token"), hidden(victim_consent.text, "tx")
        )
        assert_csrf_refused(crossed)  # the victim's transaction is bound to the victim's cookie


async def test_csrf_on_login_form(auth: LiveAuth) -> None:
    _, page = await login_page(auth)
    data = {"tx": hidden(page.text, "tx"), "username": auth.oauth.username}
    data["password"] = auth.oauth.password
    response = await auth.http.post(
        f"{auth.oauth.issuer}/authorize", data={**data, "csrf_token": "forged"}
    )
    assert_csrf_refused(response)


async def test_clickjacking_headers_on_every_page(auth: LiveAuth) -> None:
    _, login = await login_page(auth)
    assert_not_framable(login)
    consent = await consent_page(auth)
    assert_not_framable(consent)
    error = await auth.http.get(f"{auth.oauth.issuer}/authorize?client_id=nobody")
    assert error.status_code == 400
    assert_not_framable(error)
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/authorize;" in cookie


async def test_xss_in_client_name_is_inert(auth: LiveAuth) -> None:
    _, login = await login_page(auth, client_name=XSS)
    consent = await consent_page(auth, client_name=XSS)
    for page in (login, consent):
        assert "<script>alert(1)" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
        assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_xss_in_state_is_inert(auth: LiveAuth) -> None:
    flow = await auth.start()
    flow.state = XSS
    page = await auth.http.get(auth.authorization_url(flow))
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "<img src=x" not in page.text
    location = await auth.authorize(flow)
    assert "<" not in location
    assert '"' not in location
    assert f"state={quote(XSS, safe='')}" in location.replace("+", "%20")
    assert query_of(location)["state"] == XSS  # returned byte-exact, but only URL-encoded
    # The error page for an unknown client does not reflect the state either.
    error = await auth.http.get(
        f"{auth.oauth.issuer}/authorize?client_id={quote(XSS)}&state={quote(XSS)}"
    )
    assert error.status_code == 400
    assert "<script>alert(1)" not in error.text

"""Redirect URI manipulation at /authorize: an error page, never a redirect (no open redirector)."""

from __future__ import annotations

import pytest

from tests.support.flows import Flow, LiveAuth

pytestmark = pytest.mark.process

REGISTERED = "http://127.0.0.1:9/callback"
WEB_REGISTERED = "https://app.example.com/cb"


async def assert_error_page(auth: LiveAuth, flow: Flow, redirect_uri: str) -> None:
    """The request with `redirect_uri` gets the HTML error page: 400, no Location, not framable."""
    response = await auth.http.get(auth.authorization_url(flow, redirect_uri=redirect_uri))
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert "The redirect_uri is not registered for this application." in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("http://127.0.0.1:9/other", id="other-path"),
        pytest.param("http://127.0.0.1:9/callback/../evil", id="dot-segments"),
        pytest.param("http://127.0.0.1:9/Callback", id="path-case"),
        pytest.param("http://127.0.0.1:9/callback/", id="trailing-slash"),
        pytest.param("https://evil.example/callback", id="other-host"),
        pytest.param("http://localhost:9/callback", id="other-loopback-name"),
        pytest.param("http://127.0.0.1.evil.example:9/callback", id="loopback-lookalike-host"),
        pytest.param("http://evil.example@127.0.0.1:9/callback", id="userinfo"),
        pytest.param("http://127.0.0.1:9@evil.example/callback", id="userinfo-host-swap"),
        pytest.param("http://:pw@127.0.0.1:9/callback", id="password-only-userinfo"),
        pytest.param("http://127.0.0.1:9/callback#frag", id="fragment"),
        pytest.param("http://127.0.0.1:9/callback#", id="empty-fragment"),
        pytest.param(
            "http://127.0.0.1:9/callback?next=https://evil.example", id="open-redirect-param"
        ),
        pytest.param(
            "http://127.0.0.1:9/callback?redirect_uri=https%3A%2F%2Fevil.example",
            id="nested-redirect-param",
        ),
        pytest.param("https://127.0.0.1:9/callback", id="scheme-change"),
        pytest.param("javascript:alert(1)//127.0.0.1:9/callback", id="javascript"),
    ],
)
async def test_redirect_uri_manipulation_is_an_error_page(
    auth: LiveAuth, redirect_uri: str
) -> None:
    flow = await auth.start(redirect_uris=[REGISTERED])
    await assert_error_page(auth, flow, redirect_uri)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("https://app.example.com:8443/cb", id="other-port"),
        pytest.param("https://app.example.com:443/cb", id="explicit-default-port"),
        pytest.param("http://app.example.com/cb", id="downgrade-to-http"),
        pytest.param("https://app.example.com/cb?x=1", id="extra-query"),
        pytest.param("https://APP.example.com/cb", id="host-case"),
    ],
)
async def test_loopback_port_trick_on_a_non_loopback_uri(auth: LiveAuth, redirect_uri: str) -> None:
    # RFC 8252 7.3's any-port rule is for loopback IP literals only; https URIs match exactly.
    flow = await auth.start(redirect_uris=[WEB_REGISTERED])
    await assert_error_page(auth, flow, redirect_uri)


async def test_loopback_any_port_is_the_only_leeway(auth: LiveAuth) -> None:
    flow = await auth.start(redirect_uris=[REGISTERED])
    flow.redirect_uri = "http://127.0.0.1:54321/callback"
    location = await auth.authorize(flow)
    assert location.startswith("http://127.0.0.1:54321/callback?")
    assert (await auth.redeem(flow)).status_code == 200

"""Login and consent pages: CSRF, escaping, clickjacking headers, cookie flags, 303 after POST."""

from __future__ import annotations

import re
from pathlib import Path

import httpx2
from sqlalchemy import update

from secure_mcp.oauth.models import PendingAuthorization
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import Flow, Harness, pkce, query_of, running_harness
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME, running_oauth_app


def _hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


async def _login_page(oauth: Harness, **metadata: str) -> tuple[Flow, httpx2.Response]:
    flow = Flow(await oauth.register(**metadata), *pkce())
    return flow, await oauth.http.get(oauth.authorization_url(flow))


async def _sign_in(oauth: Harness, page: httpx2.Response, password: str) -> httpx2.Response:
    return await oauth.http.post(
        "/authorize",
        data={
            "csrf_token": _hidden(page.text, "csrf_token"),
            "tx": _hidden(page.text, "tx"),
            "username": TEST_USERNAME,
            "password": password,
        },
    )


async def test_login_page_form_and_headers(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    assert page.status_code == 200
    assert '<label for="username">Username</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert ">Sign in</button>" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/authorize" in cookie


async def test_html_in_client_name_is_inert(oauth: Harness) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    flow, page = await _login_page(oauth, client_name=evil)
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;" in page.text
    consent = await oauth.http.get((await _sign_in(oauth, page, TEST_PASSWORD)).headers["location"])
    assert "Allow" in consent.text
    assert "<img src=x" not in consent.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in consent.text
    assert "127.0.0.1:33333" in consent.text  # the redirect host
    assert "weather:read" in consent.text
    assert "http://127.0.0.1:8000/mcp" in consent.text
    assert flow.client["client_id"] in consent.text


async def test_login_then_consent_answer_303(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    csrf_before = _hidden(page.text, "csrf_token")
    login = await _sign_in(oauth, page, TEST_PASSWORD)
    assert login.status_code == 303
    consent = await oauth.http.get(login.headers["location"])
    assert 'name="decision" value="allow">Allow</button>' in consent.text
    assert 'name="decision" value="deny">Deny</button>' in consent.text
    assert _hidden(consent.text, "csrf_token") != csrf_before  # fresh session after login
    decided = await oauth.http.post(
        "/authorize",
        data={
            "csrf_token": _hidden(consent.text, "csrf_token"),
            "tx": _hidden(consent.text, "tx"),
            "decision": "allow",
        },
    )
    assert decided.status_code == 303
    assert query_of(decided.headers["location"])["code"]


async def test_wrong_password_shows_the_form_again(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    response = await _sign_in(oauth, page, "wrong")
    assert response.status_code == 200
    assert "Wrong username or password." in response.text
    assert "location" not in response.headers


async def test_forged_csrf_token(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    response = await oauth.http.post(
        "/authorize",
        data={
            "csrf_token": "forged",
            "tx": _hidden(page.text, "tx"),
            "username": TEST_USERNAME,
            "password": TEST_PASSWORD,
        },
    )
    assert response.status_code == 403
    assert "location" not in response.headers
    missing = await oauth.http.post("/authorize", data={"tx": _hidden(page.text, "tx")})
    assert missing.status_code == 403
    non_ascii = await oauth.http.post(
        "/authorize", data={"tx": _hidden(page.text, "tx"), "csrf_token": "\u00e9t\u00e9"}
    )
    assert non_ascii.status_code == 403
    # CSRF tokens belong to one authorization: without a live `tx` the form has expired
    orphan = await oauth.http.post("/authorize", data={"csrf_token": "\u00e9t\u00e9"})
    assert orphan.status_code == 400


async def test_unknown_transaction_and_bad_decision(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    csrf = _hidden(page.text, "csrf_token")
    unknown = await oauth.http.post("/authorize", data={"csrf_token": csrf, "tx": "nope"})
    assert unknown.status_code == 400
    assert "expired" in unknown.text
    not_signed_in = await oauth.http.post(
        "/authorize", data={"csrf_token": csrf, "tx": _hidden(page.text, "tx"), "decision": "allow"}
    )
    assert not_signed_in.status_code == 400
    assert "Sign in first" in not_signed_in.text
    consent = await oauth.http.get((await _sign_in(oauth, page, TEST_PASSWORD)).headers["location"])
    odd = await oauth.http.post(
        "/authorize",
        data={
            "csrf_token": _hidden(consent.text, "csrf_token"),
            "tx": _hidden(consent.text, "tx"),
            "decision": "maybe",
        },
    )
    assert odd.status_code == 400
    assert "Choose Allow or Deny" in odd.text


async def test_form_post_must_be_form_encoded(oauth: Harness) -> None:
    response = await oauth.http.post("/authorize", json={"csrf_token": "x"})
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_pending_authorizations_are_bounded_globally(tmp_path: Path) -> None:
    async with running_harness(tmp_path, max_pending=3) as oauth:
        flow, first = await _login_page(oauth)
        for _ in range(2):
            assert (await oauth.http.get(oauth.authorization_url(flow))).status_code == 200
        oauth.http.cookies.clear()  # another browser: the bound is global, not per browser
        full = await oauth.http.get(oauth.authorization_url(flow))
        assert full.status_code == 503
        assert 1 <= int(full.headers["retry-after"]) <= oauth.settings.code_ttl
        assert "Too many sign-ins are in progress" in full.text
        assert "set-cookie" not in full.headers
        db = Database(oauth.settings.data_dir)
        async with db.write() as session:  # the oldest ones expire: room again
            await session.execute(update(PendingAuthorization).values(expires_at=1))
        await db.close()
        assert (await oauth.http.get(oauth.authorization_url(flow))).status_code == 200
        assert (await _sign_in(oauth, first, TEST_PASSWORD)).status_code == 400  # expired


async def test_two_tabs_sign_in_and_allow_separately(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    logins = [await oauth.http.get(oauth.authorization_url(flow)) for _ in range(2)]
    consents = []
    for login in logins:  # each tab has its own sign-in (and cookie)
        signed_in = await _sign_in(oauth, login, TEST_PASSWORD)
        assert signed_in.status_code == 303
        consents.append(await oauth.http.get(signed_in.headers["location"]))
    for tab in consents:
        decided = await oauth.http.post(
            "/authorize",
            data={
                "csrf_token": _hidden(tab.text, "csrf_token"),
                "tx": _hidden(tab.text, "tx"),
                "decision": "allow",
            },
        )
        assert decided.status_code == 303
        assert query_of(decided.headers["location"])["code"]


async def test_request_without_state_resumes_after_login(oauth: Harness) -> None:
    flow = Flow(await oauth.register(client_uri="https://app.example"), *pkce())
    location = await oauth.authorize(flow, state=None)
    params = query_of(location)
    assert "state" not in params
    assert params["iss"] == oauth.settings.issuer
    assert (await oauth.redeem(flow)).status_code == 200


async def test_overlong_client_id_is_an_error_page(oauth: Harness) -> None:
    response = await oauth.http.get("/authorize?client_id=" + "x" * 100)
    assert response.status_code == 400
    assert "not registered" in response.text


async def test_expired_pending_request(oauth: Harness) -> None:
    _, page = await _login_page(oauth)
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:
        await session.execute(update(PendingAuthorization).values(expires_at=1))
    await db.close()
    response = await _sign_in(oauth, page, TEST_PASSWORD)
    assert response.status_code == 400
    assert "expired" in response.text


async def test_sign_in_cookies_stay_small(oauth: Harness) -> None:
    flow = Flow(await oauth.register(), *pkce())
    for _ in range(8):
        response = await oauth.http.get(oauth.authorization_url(flow, state="s" * 1000))
    assert len(response.headers.get("set-cookie", "")) < 1000
    assert all(len(value) < 1000 for value in oauth.http.cookies.values())


async def test_the_sign_in_page_names_the_server_and_the_application(oauth: Harness) -> None:
    _, page = await _login_page(oauth, client_name="Weather CLI")
    assert "<title>Sign in to Secure MCP authorization server</title>" in page.text
    assert "<h1>Sign in to Secure MCP authorization server</h1>" in page.text
    assert f"<code>{oauth.settings.issuer}</code>" in page.text  # which server, exactly
    assert "<strong>Weather CLI</strong> wants to use" in page.text


async def test_the_consent_page_explains_each_scope_and_allow_is_the_primary_button(
    oauth: Harness,
) -> None:
    _, page = await _login_page(oauth)
    consent = await oauth.http.get((await _sign_in(oauth, page, TEST_PASSWORD)).headers["location"])
    assert "<li>read weather alerts and forecasts <code>weather:read</code></li>" in consent.text
    allow = consent.text.index('value="allow"')
    deny = consent.text.index('value="deny"')
    assert allow < deny  # Allow first, the primary action
    assert 'class="primary" name="decision" value="allow">Allow</button>' in consent.text
    assert 'class="secondary" name="decision" value="deny">Deny</button>' in consent.text
    assert "Secure MCP authorization server" in consent.text


async def test_scope_descriptions_are_configurable(tmp_path: Path) -> None:
    descriptions = {"weather:read": "see the weather <for you>"}
    scopes = ("weather:read", "weather:alerts")
    async with running_oauth_app(
        tmp_path, scopes=scopes, scope_descriptions=descriptions, server_name="Acme sign-in"
    ) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as http:
            oauth = Harness(app, settings, http)
            flow = Flow(await oauth.register(), *pkce())
            page = await http.get(
                oauth.authorization_url(flow, scope="weather:read weather:alerts")
            )
            assert "<h1>Sign in to Acme sign-in</h1>" in page.text
            consent = await http.get(
                (await _sign_in(oauth, page, TEST_PASSWORD)).headers["location"]
            )
    assert "<li>see the weather &lt;for you&gt; <code>weather:read</code></li>" in consent.text
    assert "<li>a permission this server calls <code>weather:alerts</code></li>" in consent.text


async def test_an_unknown_application_says_what_to_do(oauth: Harness) -> None:
    """After a reset of this server's data, or a registration that expired unused."""
    response = await oauth.http.get(
        "/authorize", params={"client_id": "gone", "redirect_uri": "http://127.0.0.1:9/cb"}
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert (
        "The application (client_id) is not registered here: it may have registered before "
        "the data of this server was reset, or its registration expired unused. Start the "
        "application again; it can register anew."
    ) in response.text

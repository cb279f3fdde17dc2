"""A hostile local program or web page against the sign-in: copied cookies, silent consent,
DNS rebinding, open redirects and spoofed consent pages (real oauth.py)."""

from __future__ import annotations

import json
import re
import sqlite3
from urllib.parse import urljoin, urlsplit

import httpx2
import pytest

from tests.support.flows import Flow, LiveAuth, Stack, live_auth, pkce, query_of

pytestmark = pytest.mark.process

COOKIE = re.compile(r"^([^=;\s]+)=([^;]*)")  # any cookie the server sets


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


def fields(page: httpx2.Response, **extra: str) -> dict[str, str]:
    return {"csrf_token": hidden(page.text, "csrf_token"), "tx": hidden(page.text, "tx"), **extra}


@pytest.fixture
def thief(auth: LiveAuth) -> dict[str, str]:
    """Every cookie the server sets in `auth`'s browser, as a program on another port gets it."""
    seen: dict[str, str] = {}

    async def record(response: httpx2.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            match = COOKIE.match(header)
            if match and match.group(2) not in {"", '""'}:
                seen[match.group(1)] = match.group(2)

    auth.http.event_hooks["response"].append(record)
    return seen


async def sign_in(auth: LiveAuth, flow: Flow) -> tuple[httpx2.Response, httpx2.Response]:
    """The login page of a new authorization, and the answer to signing in on it."""
    page = await auth.http.get(auth.authorization_url(flow))
    assert 'name="password"' in page.text, page.text
    data = fields(page, username=auth.oauth.username, password=auth.oauth.password)
    return page, await auth.http.post(f"{auth.oauth.issuer}/authorize", data=data)


async def test_a_copied_cookie_yields_no_code(
    auth: LiveAuth, stack: Stack, thief: dict[str, str]
) -> None:
    victim = await auth.start()
    _, signed_in = await sign_in(auth, victim)
    consent = await auth.http.get(urljoin(auth.oauth.issuer, signed_in.headers["location"]))
    allowed = await auth.http.post(
        f"{auth.oauth.issuer}/authorize", data=fields(consent, decision="allow")
    )
    assert query_of(allowed.headers["location"])["code"]
    assert thief  # the cookies a program on another port of this host received
    async with live_auth(stack.oauth, stack.weather.url) as attacker:
        for name, value in thief.items():
            attacker.http.cookies.set(name, value)
        fresh = await attacker.start()
        for flow in (victim, fresh):  # the client the user allowed, and a new one
            page = await attacker.http.get(attacker.authorization_url(flow))
            assert page.status_code == 200, page.text
            assert 'name="password"' in page.text
            assert "location" not in page.headers
        replay = await attacker.http.post(
            f"{auth.oauth.issuer}/authorize", data=fields(consent, decision="allow")
        )
        assert replay.status_code == 400
        assert "location" not in replay.headers


async def test_a_cookie_copied_during_the_sign_in_yields_no_code(
    auth: LiveAuth, stack: Stack, thief: dict[str, str]
) -> None:
    _, signed_in = await sign_in(auth, await auth.start())  # the consent page is on screen
    consent = await auth.http.get(urljoin(auth.oauth.issuer, signed_in.headers["location"]))
    async with live_auth(stack.oauth, stack.weather.url) as attacker:
        for name, value in thief.items():
            attacker.http.cookies.set(name, value)
        own = await attacker.http.get(attacker.authorization_url(await attacker.start()))
        assert 'name="password"' in own.text
        stolen = await attacker.http.post(
            f"{auth.oauth.issuer}/authorize",
            data={"tx": hidden(consent.text, "tx"), "decision": "allow", "csrf_token": "x"},
        )
        assert stolen.status_code == 403
        assert "location" not in stolen.headers


async def test_consent_is_never_silent_for_a_public_loopback_client(auth: LiveAuth) -> None:
    """RFC 8252 8.6: a remembered consent must not send a code to whoever listens on loopback."""
    flow = await auth.new_flow()  # allowed once
    again = await auth.http.get(auth.authorization_url(flow))
    assert again.status_code == 200  # not 302 with a code
    _, signed_in = await sign_in(auth, flow)
    assert signed_in.status_code == 303
    assert urlsplit(signed_in.headers["location"]).path == "/authorize/consent"  # asked again


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}", "localhost:1"]
)
async def test_dns_rebinding_is_misdirected(stack: Stack, host: str) -> None:
    headers = {"host": host.format(port=stack.oauth.port)}
    async with httpx2.AsyncClient(timeout=10) as http:
        for method, path in (("GET", "/authorize"), ("POST", "/token"), ("POST", "/register")):
            response = await http.request(method, stack.oauth.issuer + path, headers=headers)
            assert response.status_code == 421, (method, path)
            assert "Misdirected request" in response.text
        meta = await http.get(stack.oauth.metadata_url, headers=headers)
    assert meta.status_code == 421


async def test_a_fresh_client_is_no_open_redirector(auth: LiveAuth) -> None:
    evil = "https://evil.example/landing"
    flow = await auth.start(redirect_uris=[evil])
    flow.redirect_uri = evil
    response = await auth.http.get(auth.authorization_url(flow, code_challenge=None))
    assert response.status_code == 400  # RFC 9700 4.11.2: shown here, not bounced to evil
    assert "location" not in response.headers
    assert "code_challenge" in response.text
    loopback = await auth.start()  # a loopback redirect still gets its error (RFC 6749 4.1.2.1)
    bounced = await auth.http.get(auth.authorization_url(loopback, code_challenge=None))
    assert bounced.status_code == 302
    assert query_of(bounced.headers["location"])["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        pytest.param({"client_name": "Good\u202eevil"}, "invalid_client_metadata", id="bidi"),
        pytest.param({"client_name": "Git\u200bHub"}, "invalid_client_metadata", id="zero-width"),
        pytest.param(
            {"redirect_uris": ["https://\u0430pple.example/cb"]},
            "invalid_redirect_uri",
            id="homograph-host",
        ),
        pytest.param(
            {"redirect_uris": ["https://%D0%B0pple.example/cb"]},
            "invalid_redirect_uri",
            id="escaped-host",
        ),
    ],
)
async def test_consent_page_spoofing_is_refused(
    stack: Stack, metadata: dict[str, object], error: str
) -> None:
    body = {"redirect_uris": ["http://127.0.0.1:9/callback"], **metadata}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{stack.oauth.issuer}/register", json=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_stored_spoofing_text_is_cleaned_on_the_consent_page(auth: LiveAuth) -> None:
    homograph = "\u0430pple.example"  # Cyrillic a: looks exactly like apple.example
    flow = Flow(await auth.register(redirect_uris=["https://placeholder.example/cb"]), *pkce())
    flow.redirect_uri = f"https://{homograph}/cb"
    with sqlite3.connect(auth.oauth.data_dir / "oauth.sqlite3") as db:  # as stored long ago
        db.execute(
            "UPDATE clients SET client_name = ?, redirect_uris = ? WHERE client_id = ?",
            ("Good\u202eevil", json.dumps([flow.redirect_uri]), flow.client["client_id"]),
        )
    _, signed_in = await sign_in(auth, flow)
    consent = await auth.http.get(urljoin(auth.oauth.issuer, signed_in.headers["location"]))
    assert f"<code>{homograph.encode('idna').decode()}</code>" in consent.text
    assert homograph not in consent.text
    assert "Goodevil" in consent.text
    assert "\u202e" not in consent.text

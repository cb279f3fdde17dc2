"""The sign-in session: one per authorization, kept server side; a copied cookie is worth nothing.

Browsers send localhost's cookies to every port of localhost (RFC 6265 8.5), so each test here
plays a program on another port that received every cookie the server ever set.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from sqlalchemy import func, select, update
from starlette.requests import Request

from secure_mcp.oauth.app import session_secret
from secure_mcp.oauth.authorize_request import PageError
from secure_mcp.oauth.models import Consent, PendingAuthorization
from secure_mcp.oauth.signin import SignIns
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import (
    Flow,
    Harness,
    consent_page,
    form,
    hidden,
    login_page,
    pkce,
    query_of,
    running_harness,
    sign_in,
)
from tests.support.oauth_server import TEST_USERNAME

COOKIE = re.compile(r"^([^=;\s]+)=([^;]*)")  # any cookie the server sets
SIGN_IN_COOKIE = re.compile(r"^(signin-[0-9a-f]{16})=([A-Za-z0-9_-]{43});")


class CookieThief:
    """Records every cookie the server sets, as a program on another port would receive it."""

    def __init__(self, http: httpx2.AsyncClient) -> None:
        self.seen: dict[str, str] = {}
        self.headers: list[str] = []
        http.event_hooks["response"].append(self.record)

    async def record(self, response: httpx2.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            self.headers.append(header)
            match = COOKIE.match(header)
            if match and match.group(2) not in {"", '""'}:
                self.seen[match.group(1)] = match.group(2)

    def replay(self, oauth: Harness) -> httpx2.AsyncClient:
        """A client of the attacker's, holding copies of every cookie ever set."""
        transport = httpx2.ASGITransport(app=oauth.app)
        http = httpx2.AsyncClient(transport=transport, base_url=oauth.settings.issuer)
        for name, value in self.seen.items():
            http.cookies.set(name, value)
        return http


async def new_client(oauth: Harness, **metadata: object) -> Flow:
    return Flow(await oauth.register(**metadata), *pkce())


async def test_the_cookie_is_narrow_and_holds_only_a_random_value(oauth: Harness) -> None:
    page = await login_page(oauth, await new_client(oauth))
    header = page.headers["set-cookie"]
    match = SIGN_IN_COOKIE.match(header)
    assert match, header
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert attributes == {"httponly", "max-age=600", "path=/authorize", "samesite=strict"}
    db = Database(oauth.settings.data_dir)
    async with db.read() as session:
        row = await session.scalar(select(PendingAuthorization))
    await db.close()
    assert row is not None
    assert row.cookie_name == match.group(1)
    assert row.binding_hash == hashlib.sha256(match.group(2).encode()).hexdigest()
    assert row.subject is None  # nobody is signed in yet
    assert match.group(2) not in (oauth.settings.data_dir / "oauth.sqlite3").read_text("latin-1")
    csrf = hidden(page.text, "csrf_token")
    assert csrf not in header  # the CSRF token cannot be read from the cookie


async def test_an_https_issuer_sets_secure_cookies(tmp_path: Path) -> None:
    async with running_harness(tmp_path, issuer="https://as.example") as oauth:
        page = await login_page(oauth, await new_client(oauth))
    assert "secure" in {part.strip().lower() for part in page.headers["set-cookie"].split(";")}


async def test_a_copied_cookie_is_worthless_once_the_authorization_ends(oauth: Harness) -> None:
    thief = CookieThief(oauth.http)
    victim = await new_client(oauth)
    consent = await consent_page(oauth, victim)
    allowed = await oauth.http.post("/authorize", data=form(consent, decision="allow"))
    assert query_of(allowed.headers["location"])["code"]
    assert "max-age=0" in allowed.headers["set-cookie"].lower()  # ended with the authorization
    assert not [name for name in oauth.http.cookies if name.startswith("signin-")]
    assert len(thief.seen) == 1
    attacker_client = await new_client(oauth)
    async with thief.replay(oauth) as attacker:
        for flow in (victim, attacker_client):  # the allowed client, and a new one
            page = await attacker.get(oauth.authorization_url(flow))
            assert page.status_code == 200
            assert 'name="password"' in page.text  # the password again, never a code
            assert 'name="decision"' not in page.text
        replayed = await attacker.post("/authorize", data=form(consent, decision="allow"))
        assert replayed.status_code == 400
        assert "expired" in replayed.text
        resumed = await attacker.get(f"/authorize/consent?tx={hidden(consent.text, 'tx')}")
        assert resumed.status_code == 400
        assert "location" not in replayed.headers
        assert "location" not in resumed.headers


async def test_a_cookie_copied_mid_authorization_yields_no_code(oauth: Harness) -> None:
    thief = CookieThief(oauth.http)
    victim = await new_client(oauth)
    consent = await consent_page(oauth, victim)  # signed in, the consent page on screen
    async with thief.replay(oauth) as attacker:
        own = await attacker.get(oauth.authorization_url(await new_client(oauth)))
        assert 'name="password"' in own.text  # its own request needs the password
        for csrf in (None, "forged", hidden(own.text, "csrf_token")):
            data = {"tx": hidden(consent.text, "tx"), "decision": "allow"}
            if csrf is not None:
                data["csrf_token"] = csrf
            stolen = await attacker.post("/authorize", data=data)
            assert stolen.status_code == 403, csrf
            assert "location" not in stolen.headers
    allowed = await oauth.http.post("/authorize", data=form(consent, decision="allow"))
    assert query_of(allowed.headers["location"])["code"]  # the victim's authorization survives


async def test_signing_in_replaces_the_cookie_and_csrf_token(oauth: Harness) -> None:
    thief = CookieThief(oauth.http)
    page = await login_page(oauth, await new_client(oauth))
    planted = dict(thief.seen)  # what a program could have set or copied before the sign-in
    signed_in = await sign_in(oauth, page)
    name = next(iter(planted))
    assert thief.seen[name] != planted[name]
    consent = await oauth.http.get(signed_in.headers["location"])
    assert hidden(consent.text, "csrf_token") != hidden(page.text, "csrf_token")
    transport = httpx2.ASGITransport(app=oauth.app)
    async with httpx2.AsyncClient(transport=transport, base_url=oauth.settings.issuer) as other:
        other.cookies.set(name, planted[name])
        fixed = await other.get(signed_in.headers["location"])
        assert fixed.status_code == 403  # the pre-sign-in value is dead
        posted = await other.post("/authorize", data=form(consent, decision="allow"))
        assert posted.status_code == 403


async def test_the_consent_page_before_sign_in_is_the_login_page(oauth: Harness) -> None:
    page = await login_page(oauth, await new_client(oauth))
    early = await oauth.http.get(f"/authorize/consent?tx={hidden(page.text, 'tx')}")
    assert early.status_code == 200
    assert 'name="password"' in early.text
    missing = await oauth.http.get("/authorize/consent")
    assert missing.status_code == 400


async def test_a_double_submitted_allow_issues_one_code(oauth: Harness) -> None:
    consent = await consent_page(oauth, await new_client(oauth))
    data = form(consent, decision="allow")
    answers = await asyncio.gather(*(oauth.http.post("/authorize", data=data) for _ in range(4)))
    codes = [a for a in answers if a.status_code == 303]
    assert len(codes) == 1
    assert query_of(codes[0].headers["location"])["code"]
    assert all(a.status_code == 400 and "expired" in a.text for a in answers if a not in codes)


async def test_deny_ends_the_sign_in(oauth: Harness) -> None:
    consent = await consent_page(oauth, await new_client(oauth))
    denied = await oauth.http.post("/authorize", data=form(consent, decision="deny"))
    assert query_of(denied.headers["location"])["error"] == "access_denied"
    assert "max-age=0" in denied.headers["set-cookie"].lower()
    again = await oauth.http.post("/authorize", data=form(consent, decision="allow"))
    assert again.status_code in {400, 403}
    assert "location" not in again.headers


async def test_sign_out_ends_every_sign_in_of_the_browser(oauth: Harness) -> None:
    flow = await new_client(oauth)
    other_tab = await login_page(oauth, flow)
    consent = await consent_page(oauth, flow)
    assert 'action="/authorize/signout"' in consent.text
    assert ">Sign out</button>" in consent.text
    out = await oauth.http.post("/authorize/signout", data=form(consent))
    assert out.status_code == 200
    assert "You are signed out" in out.text
    assert "Test client" in out.text
    assert "location" not in out.headers  # nothing is sent to the application
    deleted = [h for h in out.headers.get_list("set-cookie") if "max-age=0" in h.lower()]
    assert len(deleted) == 2  # this tab's cookie and the other tab's
    assert not [name for name in oauth.http.cookies if name.startswith("signin-")]
    db = Database(oauth.settings.data_dir)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(PendingAuthorization)) == 0
    await db.close()
    after = await oauth.http.post("/authorize", data=form(consent, decision="allow"))
    assert after.status_code == 400
    assert (await oauth.http.post("/authorize", data=form(other_tab))).status_code == 400


async def test_sign_out_needs_the_form(oauth: Harness) -> None:
    consent = await consent_page(oauth, await new_client(oauth))
    forged = await oauth.http.post(
        "/authorize/signout", data={"tx": hidden(consent.text, "tx"), "csrf_token": "forged"}
    )
    assert forged.status_code == 403
    unknown = await oauth.http.post("/authorize/signout", data={"tx": "nope", "csrf_token": "x"})
    assert unknown.status_code == 400
    assert (await oauth.http.get("/authorize/signout")).status_code == 405
    allowed = await oauth.http.post("/authorize", data=form(consent, decision="allow"))
    assert allowed.status_code == 303  # still signed in: nothing was ended


async def test_sign_out_names_a_client_that_is_gone(oauth: Harness) -> None:
    consent = await consent_page(oauth, await new_client(oauth))
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:  # the request now names a client that cannot be found
        row = await session.scalar(select(PendingAuthorization))
        assert row is not None
        row.request = {**row.request, "client_id": "https://gone.example/doc.json"}
    await db.close()
    out = await oauth.http.post("/authorize/signout", data=form(consent))
    assert out.status_code == 200
    assert "Nothing was shared with\n<strong>the application</strong>" in out.text


async def test_a_public_loopback_client_is_asked_every_time(oauth: Harness) -> None:
    """RFC 8252 8.6: any local program can listen on a loopback port; consent is never assumed."""
    flow = await new_client(oauth)
    first = await consent_page(oauth, flow)
    await oauth.http.post("/authorize", data=form(first, decision="allow"))
    signed_in = await sign_in(oauth, await login_page(oauth, flow))
    assert urlsplit(signed_in.headers["location"]).path == "/authorize/consent"
    db = Database(oauth.settings.data_dir)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Consent)) == 0
    await db.close()


async def test_remembered_consent_spares_only_the_consent_page(oauth: Harness) -> None:
    confidential = await new_client(oauth, token_endpoint_auth_method="client_secret_basic")
    https_public = await new_client(oauth, redirect_uris=["https://app.example/cb"])
    https_public.redirect_uri = "https://app.example/cb"
    for flow in (confidential, https_public):
        first = await consent_page(oauth, flow)
        await oauth.http.post("/authorize", data=form(first, decision="allow"))
        page = await login_page(oauth, flow)  # the password is asked again, always
        signed_in = await sign_in(oauth, page)
        location = signed_in.headers["location"]
        assert location.startswith(flow.redirect_uri + "?code=")  # but not the consent page
        assert "max-age=0" in signed_in.headers["set-cookie"].lower()


async def test_an_expired_consent_is_asked_again_and_renewed(oauth: Harness) -> None:
    flow = await new_client(oauth, token_endpoint_auth_method="client_secret_basic")
    first = await consent_page(oauth, flow)
    await oauth.http.post("/authorize", data=form(first, decision="allow"))
    db = Database(oauth.settings.data_dir)
    try:
        async with db.write() as session:
            await session.execute(update(Consent).values(expires_at=1))
        again = await consent_page(oauth, flow)  # expired: the consent page again
        await oauth.http.post("/authorize", data=form(again, decision="allow"))
        async with db.read() as session:
            rows = list(await session.scalars(select(Consent)))
    finally:
        await db.close()
    assert len(rows) == 1
    assert rows[0].expires_at > 1


async def test_two_sign_ins_of_the_same_form_at_once_count_once(oauth: Harness) -> None:
    page = await login_page(oauth, await new_client(oauth))
    cookie = page.headers["set-cookie"].split(";")[0].encode()
    request = Request({"type": "http", "headers": [(b"cookie", cookie)]})
    db = Database(oauth.settings.data_dir)
    try:
        signins = SignIns(oauth.settings, db, session_secret(oauth.settings).encode())
        first, second = [await signins.resume(request, hidden(page.text, "tx")) for _ in range(2)]
        await signins.sign_in(first, TEST_USERNAME)
        with pytest.raises(PageError, match="expired"):  # its cookie was replaced meanwhile
            await signins.sign_in(second, TEST_USERNAME)
    finally:
        await db.close()


async def test_sign_out_deletes_stale_cookies_too(oauth: Harness) -> None:
    consent = await consent_page(oauth, await new_client(oauth))
    oauth.http.cookies.set("signin-0123456789abcdef", "x" * 43)  # a row that no longer exists
    out = await oauth.http.post("/authorize/signout", data=form(consent))
    deleted = [h for h in out.headers.get_list("set-cookie") if "max-age=0" in h.lower()]
    assert len(deleted) == 2

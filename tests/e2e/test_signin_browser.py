"""Chromium shares localhost's cookies with every port (RFC 6265 8.5); ours are worth nothing there.

oauth.py runs as `http://localhost:<port>`; a hostile program listens on another port of
localhost and is also a registered client, whose redirect URI it chose under `/authorize/` so
that even the cookie's path matches. It records every cookie the browser sends it, during the
sign-in and when the browser comes back with the code, then replays them.
"""

from __future__ import annotations

import contextlib
import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import pytest
from playwright.async_api import Browser

from tests.support.browser import recording_server
from tests.support.oauth_harness import RESOURCE, pkce
from tests.support.oauth_server import run_oauth_server

pytestmark = pytest.mark.browser


@dataclass
class Listener:
    """What the hostile program on localhost saw: each request's path and Cookie header."""

    port: int
    seen: list[tuple[str, str]] = field(default_factory=list)

    def cookies(self) -> dict[str, str]:
        """Every cookie it received, by name."""
        found: dict[str, str] = {}
        for _, header in self.seen:
            for pair in filter(None, (p.strip() for p in header.split(";"))):
                name, _, value = pair.partition("=")
                found[name] = value
        return found


@contextlib.contextmanager
def hostile_listener() -> Iterator[Listener]:
    """An HTTP server on localhost (127.0.0.1) recording the cookies browsers send it."""
    listener = Listener(0)

    def record(path: str, headers: http.client.HTTPMessage) -> None:
        listener.seen.append((path, headers.get("cookie", "")))

    body = b"<!doctype html><title>thanks</title><p>Got it.</p>"
    with recording_server(record, body) as port:
        listener.port = port
        yield listener


def authorization_url(issuer: str, client_id: str, redirect_uri: str) -> str:
    _, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "browser",
        "resource": RESOURCE,
    }
    return f"{issuer}/authorize?{urlencode(query)}"


async def register(issuer: str, redirect_uri: str) -> str:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{issuer}/register",
            json={"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none"},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


async def test_cookies_shared_across_localhost_ports_are_worthless(
    tmp_path: Path, chromium: Browser
) -> None:
    with (
        run_oauth_server(tmp_path, host="localhost") as server,
        hostile_listener() as hostile,
    ):
        issuer = server.issuer  # http://localhost:<port>
        redirect_uri = f"http://localhost:{hostile.port}/authorize/callback"
        client_id = await register(issuer, redirect_uri)
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(authorization_url(issuer, client_id, redirect_uri))
        await page.get_by_label("Username").fill(server.username)
        await page.get_by_label("Password").fill(server.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="Allow").wait_for()

        # Mid sign-in, the user opens a page of the hostile program: it gets the live cookie.
        peek = await context.new_page()
        await peek.goto(f"http://localhost:{hostile.port}/authorize/peek")
        await peek.goto(f"http://localhost:{hostile.port}/")  # outside the cookie's path
        assert hostile.cookies()  # RFC 6265 8.5: the browser shared them across ports
        tx = re.search(r'name="tx" value="([^"]*)"', await page.content())
        assert tx
        await page.get_by_role("button", name="Allow").click()
        await page.wait_for_url(f"{redirect_uri}?**")

        # Replayed: no code for the allowed client, nor for a new one, nor for the old forms.
        other_client = await register(issuer, redirect_uri)
        async with httpx2.AsyncClient(timeout=10, cookies=hostile.cookies()) as attacker:
            for target in (client_id, other_client):
                answer = await attacker.get(authorization_url(issuer, target, redirect_uri))
                assert answer.status_code == 200
                assert 'name="password"' in answer.text
                assert "location" not in answer.headers
            replay = await attacker.post(
                f"{issuer}/authorize", data={"tx": tx.group(1), "decision": "allow"}
            )
            assert replay.status_code in {400, 403}
            assert "location" not in replay.headers

        # How: one cookie per sign-in, Path=/authorize, deleted when the authorization ends.
        peeked = next(cookie for path, cookie in hostile.seen if path == "/authorize/peek")
        assert "signin-" in peeked
        outside = [cookie for path, cookie in hostile.seen if not path.startswith("/authorize")]
        assert outside
        assert not [c for c in outside if "signin-" in c]
        callback_path, callback_cookies = next(
            seen for seen in hostile.seen if seen[0].startswith("/authorize/callback?")
        )
        assert "code=" in callback_path
        assert "signin-" not in callback_cookies  # deleted in the very answer that redirected
        assert not [c for c in await context.cookies() if c["name"].startswith("signin-")]
        await context.close()


async def test_sign_out_from_the_consent_page(tmp_path: Path, chromium: Browser) -> None:
    with run_oauth_server(tmp_path, host="localhost") as server:
        redirect_uri = "http://127.0.0.1:9/callback"
        client_id = await register(server.issuer, redirect_uri)
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(authorization_url(server.issuer, client_id, redirect_uri))
        await page.get_by_label("Username").fill(server.username)
        await page.get_by_label("Password").fill(server.password)
        await page.get_by_role("button", name="Sign in").click()
        assert await page.get_by_text("asks to act for demo").is_visible()
        assert [c for c in await context.cookies() if c["name"].startswith("signin-")]
        consent_url = page.url
        await page.get_by_role("button", name="Sign out").click()
        await page.get_by_role("heading", name="Signed out").wait_for()
        assert page.url == f"{server.issuer}/authorize/signout"
        assert not await context.cookies()
        answer = await page.goto(consent_url)  # the consent page is gone with the sign-in
        assert answer is not None
        assert answer.status == 400  # the sign-in has ended
        await page.get_by_role("heading", name="Authorization error").wait_for()
        await context.close()

"""Stale state: a server that forgot the client, several MCP URLs on one server, several processes.

The authorization server here is the conformance-style fake with `known_clients_only` on: like
oauth.py, it answers `invalid_client` at /token and /revoke for a client it does not know, and
shows an error page (no redirect) at /authorize, which the scripted browser cannot get past.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage
from secure_mcp.client.connection import ClientConnectError, McpToolSession, connect, logout_stored
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.private_files import write_private_json
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    Router,
    weather_mcp,
)
from tests.support.scripted_browser import ScriptedBrowser

RS2_ORIGIN = "http://127.0.0.1:8001"
RS2_URL = f"{RS2_ORIGIN}/mcp"
GONE = (
    f"The authorization server {AS_ORIGIN} no longer knows this client (its registration is "
    "gone, e.g. the server's data was reset); registering again."
)


@pytest.fixture
def fake_as() -> FakeAuthServer:
    """An authorization server that knows only the clients registered with it."""
    return FakeAuthServer(known_clients_only=True)


@asynccontextmanager
async def world(fake_as: FakeAuthServer, browser: ScriptedBrowser) -> AsyncIterator[Router]:
    """Two MCP servers (two resources) protected by one authorization server."""
    first, second = weather_mcp(fake_as), weather_mcp(fake_as, resource_url=RS2_URL)
    apps = {
        RS_ORIGIN: first.streamable_http_app(json_response=True, stateless_http=True),
        RS2_ORIGIN: second.streamable_http_app(json_response=True, stateless_http=True),
        AS_ORIGIN: fake_as.app(),
    }
    async with first.session_manager.run(), second.session_manager.run():
        router = Router(apps)
        browser.router = router
        yield router


@asynccontextmanager
async def session(
    settings: ClientSettings,
    router: Router,
    browser: ScriptedBrowser,
    lines: list[str],
    wait: float = 300.0,
) -> AsyncIterator[McpToolSession]:
    async with connect(
        settings,
        write=lines.append,
        http_transport=router,
        opener=browser.open,
        authorization_timeout=wait,
    ) as connected:
        yield connected


async def call(
    settings: ClientSettings, router: Router, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """One connection and one tool call that must succeed."""
    async with session(settings, router, browser, lines) as connected:
        result = await connected.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error, result.content


def client_ids(browser: ScriptedBrowser) -> list[str]:
    """The client_id of each authorization the browser was sent to."""
    return [url.split("client_id=")[1].split("&")[0] for url in browser.opened]


def expire_stored_tokens(state_dir: Path) -> None:
    path = state_dir / STATE_FILE
    state = json.loads(path.read_text())
    for per_resource in state["tokens"].values():
        for entry in per_resource.values():
            entry["expires_at"] = 0
    write_private_json(path, state)


async def test_a_forgotten_registration_is_made_again_before_the_browser_opens(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """Data folder deleted, stored access token unknown there: the MCP server says 401, the
    client checks its registration before sending the browser to a "not registered" page."""
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        first = client_ids(browser)[0]
        fake_as.forget()
        lines.clear()
        await call(settings, router, browser, lines)
    assert len(browser.opened) == 2  # one sign-in, with the new registration
    second = client_ids(browser)[1]
    assert second != first
    assert list(fake_as.registrations) == [second]
    assert lines.count(GONE) == 1
    assert "GET /authorize (unknown client)" not in fake_as.log
    stored = FileTokenStorage(settings.state_dir, RS_URL).registration(AS_ORIGIN)
    assert stored is not None
    assert stored.client_id == second


async def test_a_refresh_refused_with_invalid_client_registers_again(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        fake_as.forget()
        expire_stored_tokens(settings.state_dir)
        lines.clear()
        await call(settings, router, browser, lines)
    assert len(browser.opened) == 2
    assert lines.count(GONE) == 1
    assert not any("could not be renewed" in line for line in lines)  # one line, not two
    assert "GET /authorize (unknown client)" not in fake_as.log


async def test_a_registration_is_made_again_once_only(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """A server that refuses every client at /token: one new registration, then one line."""

    class RefusesAll(FakeAuthServer):
        refuse_all = False

        async def _token(self, request: Request) -> Response:
            if self.refuse_all:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            return await super()._token(request)

    fake_as = RefusesAll(known_clients_only=True)
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        fake_as.forget()
        fake_as.refuse_all = True
        with pytest.raises(ClientConnectError) as caught:
            async with session(settings, router, browser, lines, wait=5):
                pass
    assert str(caught.value) == (
        f"The authorization server {AS_ORIGIN} refused this client again right after it "
        "registered anew (invalid_client); check the authorization server."
    )
    assert len(fake_as.registrations) == 1  # registered again once, not in a loop
    assert lines.count(GONE) == 1


async def test_logout_after_a_reset_does_not_claim_the_tokens_stay_valid(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        fake_as.forget()
        lines.clear()
        assert await logout_stored(settings, lines.append, http_transport=router)
        assert FileTokenStorage(settings.state_dir, RS_URL).registration(AS_ORIGIN) is None
        await call(settings, router, browser, lines)  # registers afresh, no check needed
    assert lines[:2] == [
        f"The authorization server {AS_ORIGIN} no longer knows this client (its registration "
        "is gone, e.g. the server's data was reset), so it honours no token issued to it: "
        "nothing is left to revoke there.",
        f"Signed out of {RS_URL}.",
    ]
    assert not any("stay valid" in line for line in lines)
    assert GONE not in lines


async def test_a_second_mcp_url_on_the_same_server_shares_the_registration(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """An abandoned sign-in for a second MCP URL must not replace the first URL's registration:
    the first URL's refresh (bound to its client) then still works, with no browser."""
    other = ClientSettings(state_dir=settings.state_dir, server_url=RS2_URL)
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        [registered] = fake_as.registrations
        browser.open = lambda url: browser.opened.append(url) or True  # type: ignore[method-assign]
        with pytest.raises(ClientConnectError, match="No authorization response"):
            async with session(other, router, browser, lines, wait=0.2):
                pass  # the user never comes back from the second sign-in
        assert list(fake_as.registrations) == [registered]  # no second registration
        assert client_ids(browser)[1] == registered
        expire_stored_tokens(settings.state_dir)
        fake_as.log.clear()
        async with session(settings, router, browser, lines) as connected:
            assert not (await connected.call_tool("get_alerts", {"state": "CA"})).is_error
    assert fake_as.log == ["POST /token refresh_token"]
    assert len(browser.opened) == 2  # the first sign-in and the abandoned one only


async def test_tokens_are_refreshed_as_the_client_they_were_issued_to(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """Even when the server's registration changes (another process registered meanwhile)."""
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        [first] = fake_as.registrations
        storage = FileTokenStorage(settings.state_dir, RS_URL)
        replaced = storage.registration(AS_ORIGIN)
        assert replaced is not None
        fake_as.registrations["client-later"] = {}
        await storage.set_client_info(replaced.model_copy(update={"client_id": "client-later"}))
        expire_stored_tokens(settings.state_dir)
        fake_as.log.clear()
        await call(settings, router, browser, lines)
    assert fake_as.log == ["POST /token refresh_token"]
    assert len(browser.opened) == 1
    [(_, _, client)] = storage.all_tokens()
    assert client is not None
    assert client.client_id == first


async def test_two_sessions_sharing_a_state_folder_refresh_once(
    settings: ClientSettings, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """All find the access token expired while one refresh is on its way (a slow server); the
    others wait for the lock, re-read the tokens it stored, and do not spend the rotated
    refresh token again."""

    class SlowRefresh(FakeAuthServer):
        async def _token(self, request: Request) -> Response:
            if b"refresh_token" in await request.body():
                await asyncio.sleep(0.3)
            return await super()._token(request)

    fake_as = SlowRefresh(known_clients_only=True)
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        expire_stored_tokens(settings.state_dir)
        fake_as.log.clear()
        await asyncio.gather(*(call(settings, router, browser, lines) for _ in range(4)))
    assert fake_as.log == ["POST /token refresh_token"]
    assert len(browser.opened) == 1


async def test_a_check_that_gets_no_answer_is_left_to_the_sign_in(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """No answer proves nothing: the sign-in goes on with the stored registration."""
    async with world(fake_as, browser) as router:
        await call(settings, router, browser, lines)
        fake_as.tokens.clear()  # the stored access token is refused: a sign-in is needed
        original = router.handle_async_request
        dropped: list[str] = []

        async def drop_the_check(request: httpx2.Request) -> httpx2.Response:
            if b"registration-check-" in request.content:
                dropped.append(str(request.url))
                raise httpx2.ConnectError("unreachable", request=request)
            return await original(request)

        router.handle_async_request = drop_the_check  # type: ignore[method-assign]
        lines.clear()
        await call(settings, router, browser, lines)
    assert dropped == [f"{AS_ORIGIN}/token"]
    assert len(browser.opened) == 2
    assert client_ids(browser)[0] == client_ids(browser)[1]
    assert GONE not in lines

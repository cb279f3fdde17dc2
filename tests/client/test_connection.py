"""connect(): sign in against conformance-style servers, reuse, refresh, step-up and log out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import stat
import time
from pathlib import Path

import httpx2
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import ListToolsResult, Tool

from secure_mcp.client.auth.interaction import Authorizer
from secure_mcp.client.auth.provider import ProviderParts, SecureOAuthProvider
from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage
from secure_mcp.client.connection import (
    ClientConnectError,
    McpToolSession,
    _status_error,
    connect,
    http_transport,
    logout_stored,
)
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    FakeResource,
    Router,
    expire_stored_tokens,
    running,
    weather_mcp,
)
from tests.support.scripted_browser import ScriptedBrowser, connected


async def _run(
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> list[str]:
    """Connect, list the tools and call one; return the tool names."""
    async with connected(settings, fake_as, browser, lines.append) as session:
        tools = await session.list_tools()
        result = await session.call_tool("get_alerts", {"state": "CA"})
        assert not result.is_error
        assert "No alerts in CA" in str(result.content)
        return [tool.name for tool in tools]


async def test_first_run_authorizes_and_second_run_reuses_tokens(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    assert await _run(settings, fake_as, browser, lines) == ["get_alerts"]
    assert len(browser.opened) == 1
    assert any(browser.opened[0] in line for line in lines)  # the URL is always printed
    assert "You can close this tab" in browser.callback_pages[0]
    registration = next(iter(fake_as.registrations.values()))
    assert registration["token_endpoint_auth_method"] == "none"
    assert registration["application_type"] == "native"
    assert registration["grant_types"] == ["authorization_code", "refresh_token"]
    params = fake_as.authorize_params[0]
    assert params["redirect_uri"].startswith("http://127.0.0.1:")
    assert params["redirect_uri"] in registration["redirect_uris"]
    assert params["code_challenge_method"] == "S256"
    assert params["resource"] == "http://127.0.0.1:8000/mcp"

    fake_as.log.clear()
    assert await _run(settings, fake_as, browser, []) == ["get_alerts"]
    assert len(browser.opened) == 1  # no second authorization
    assert fake_as.log == []  # not even discovery


async def test_state_file_is_private(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await _run(settings, fake_as, browser, lines)
    path = settings.state_dir / STATE_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(settings.state_dir).st_mode) == 0o700


async def test_expired_token_is_refreshed_silently_after_restart(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await _run(settings, fake_as, browser, lines)
    expire_stored_tokens(settings.state_dir)
    fake_as.log.clear()
    await _run(settings, fake_as, browser, lines)
    assert len(browser.opened) == 1
    assert fake_as.log == ["POST /token refresh_token"]


async def test_token_is_refreshed_early_within_a_session(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with connected(settings, fake_as, browser, lines.append) as session:
        context = session._provider.context
        assert context.token_expiry_time is not None
        # a tenth of the one-hour life, at most 30 s, is kept as a margin
        assert 3569 < context.token_expiry_time - time.time() < 3571
        context.token_expiry_time = time.time() - 1
        expire_stored_tokens(settings.state_dir)  # as it would be: what it re-reads agrees
        fake_as.log.clear()
        assert not (await session.call_tool("get_alerts", {"state": "CA"})).is_error
    assert fake_as.log == ["POST /token refresh_token"]
    assert len(browser.opened) == 1


async def test_failed_refresh_falls_back_to_authorization(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await _run(settings, fake_as, browser, lines)
    expire_stored_tokens(settings.state_dir)
    fake_as.refresh_works = False
    await _run(settings, fake_as, browser, lines)
    assert len(browser.opened) == 2
    assert "Your session could not be renewed; signing in again." in lines


async def test_logout_revokes_and_deletes(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    await _run(settings, fake_as, browser, lines)
    async with running(weather_mcp(fake_as), fake_as) as router:
        assert await logout_stored(settings, lines.append, http_transport=router)
        assert not await logout_stored(settings, lines.append, http_transport=router)
    assert [hint for hint, _ in fake_as.revoked] == ["refresh_token", "access_token"]
    assert fake_as.tokens == {}
    assert lines[-1] == "No stored sign-in for http://127.0.0.1:8000/mcp."
    await _run(settings, fake_as, browser, lines)
    assert len(browser.opened) == 2


async def test_session_logout_then_login_again(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with connected(settings, fake_as, browser, lines.append) as session:
        await session.logout()
        assert fake_as.tokens == {}
        assert lines[-1] == "Signed out of http://127.0.0.1:8000/mcp."
        result = await session.call_tool("get_alerts", {"state": "TX"})  # signs in again
        assert not result.is_error
        assert len(browser.opened) == 2
        await session.login()
        assert len(browser.opened) == 3
        assert len(fake_as.tokens) == 1  # /login revoked the old token
        unknown = await session.call_tool("no_such_tool", {})
        assert unknown.is_error


async def test_sign_in_failure_mid_session_is_one_error_and_the_session_survives(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    settings = dataclasses.replace(settings, max_sign_ins=4)  # four sign-ins in this session
    async with connected(settings, fake_as, browser, lines.append) as session:
        fake_as.tokens.clear()  # the server forgot us
        fake_as.refresh_tokens.clear()
        fake_as.refuse = "access_denied"
        with pytest.raises(ClientConnectError, match="refused: access_denied"):
            await session.call_tool("get_alerts", {"state": "CA"})
        with pytest.raises(ClientConnectError, match="refused: access_denied"):
            await session.list_tools()
        fake_as.refuse = None
        assert [tool.name for tool in await session.list_tools()] == ["get_alerts"]


async def test_browser_that_cannot_open_falls_back_to_paste(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    loop = asyncio.get_running_loop()

    def pasted(prompt: str) -> str:
        url = next(line for line in lines if "/authorize?" in line).split()[-1]
        return asyncio.run_coroutine_threadsafe(browser.location_for(url), loop).result()

    async with connected(
        settings, fake_as, browser, lines.append, opener=lambda url: False, input_fn=pasted
    ) as session:
        assert [tool.name for tool in await session.list_tools()] == ["get_alerts"]
    assert "Could not open a browser here; paste the redirect URL instead." in lines


async def test_no_browser_prints_the_url_and_still_listens(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser
) -> None:
    settings = dataclasses.replace(settings, open_browser=False)
    written: list[str] = []

    def write(line: str) -> None:
        written.append(line)
        if "/authorize?" in line:  # the user copies the URL into a browser
            browser.open(line.split()[-1])

    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(
            settings, write=write, http_transport=router, opener=lambda url: pytest.fail(url)
        ) as session:
            assert await session.list_tools()
    assert "You can close this tab" in browser.callback_pages[0]


def _router_with(resource: FakeResource, fake_as: FakeAuthServer) -> Router:
    return Router({RS_ORIGIN: resource.app(), AS_ORIGIN: fake_as.app()})


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (403, r"refuses access \(HTTP 403\)", "insufficient_scope"),
        (404, "There is no MCP server at", "not_found"),
        (503, r"is unavailable \(HTTP 503\)", "temporarily_unavailable"),
        (500, r"failed \(HTTP 500\)", "server_error"),
    ],
    ids=["403", "404", "503", "500"],
)
async def test_server_status_becomes_one_line(
    status: int, message: str, error: str, settings: ClientSettings, fake_as: FakeAuthServer
) -> None:
    router = _router_with(FakeResource(fake_as, status=status), fake_as)
    with pytest.raises(ClientConnectError, match=message) as caught:
        async with connect(settings, write=[].append, http_transport=router):
            pass
    assert caught.value.error == error


async def test_token_still_refused_after_sign_in(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    browser.router = _router_with(FakeResource(fake_as, accept_tokens=False), fake_as)
    with pytest.raises(ClientConnectError, match=r"still refuses the sign-in \(HTTP 401\)"):
        async with connect(
            settings, write=lines.append, http_transport=browser.router, opener=browser.open
        ):
            pass


async def test_unreachable_server_is_named(settings: ClientSettings) -> None:
    with pytest.raises(ClientConnectError) as caught:
        async with connect(settings, write=[].append, http_transport=Router({})):
            pass
    assert str(caught.value) == (
        "Cannot reach http://127.0.0.1:8000/mcp (ConnectError); is the server running?"
    )
    assert caught.value.error == "server_unreachable"


async def test_unreachable_authorization_server_is_named(
    settings: ClientSettings, fake_as: FakeAuthServer
) -> None:
    router = Router({RS_ORIGIN: FakeResource(fake_as).app()})
    with pytest.raises(ClientConnectError, match=r"Cannot reach http://127\.0\.0\.1:9000/"):
        async with connect(settings, write=[].append, http_transport=router):
            pass


async def test_corrupt_state_file_is_one_line(
    settings: ClientSettings, fake_as: FakeAuthServer
) -> None:
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / STATE_FILE).write_text("{broken")
    router = _router_with(FakeResource(fake_as), fake_as)
    with pytest.raises(ClientConnectError, match="cannot read") as caught:
        async with connect(settings, write=[].append, http_transport=router):
            pass
    assert caught.value.error == "storage_error"
    with pytest.raises(ClientConnectError, match="cannot read"):
        await logout_stored(settings, [].append, http_transport=router)


class _PagedClient:
    """Stands in for mcp.Client: two pages of tools, then an error."""

    def __init__(self) -> None:
        self.calls = 0

    async def list_tools(self, cursor: str | None = None) -> ListToolsResult:
        self.calls += 1
        if self.calls == 3:
            raise MCPError(code=-32603, message="boom")
        tool = Tool(name=f"t{cursor or 0}", input_schema={"type": "object"})
        return ListToolsResult(tools=[tool], next_cursor=None if cursor else "1")

    async def call_tool(self, name: str, arguments: dict[str, object]) -> None:
        raise MCPError(code=-32602, message=f"Unknown tool: {name}")


async def test_list_tools_reads_every_page_and_reports_errors(
    settings: ClientSettings, fake_as: FakeAuthServer
) -> None:
    authorizer = Authorizer(
        paste=True, open_browser=False, write=print, opener=lambda u: False, input_fn=input
    )
    storage = FileTokenStorage(settings.state_dir, RS_URL)
    provider = SecureOAuthProvider(ProviderParts(settings, storage, authorizer, print))
    client = _PagedClient()
    session = McpToolSession(client, httpx2.AsyncClient(), provider, print)  # type: ignore[arg-type]
    assert [tool.name for tool in await session.list_tools()] == ["t0", "t1"]
    with pytest.raises(ClientConnectError, match="Could not list the tools: boom"):
        await session.list_tools()
    result = await session.call_tool("nope", {})
    assert result.is_error
    assert "Unknown tool: nope" in str(result.content)


async def test_bad_client_metadata_url_is_one_line(settings: ClientSettings) -> None:
    settings = dataclasses.replace(settings, client_metadata_url="http://client.example/cimd")
    with pytest.raises(ClientConnectError, match="--client-metadata-url must be an https URL"):
        async with connect(settings, write=[].append, http_transport=Router({})):
            pass


async def test_unreachable_authorization_server_mid_session_is_one_error(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with connected(settings, fake_as, browser, lines.append) as session:
        fake_as.tokens.clear()  # the next call needs a refresh
        as_app = browser.router.transports.pop(AS_ORIGIN)
        with pytest.raises(ClientConnectError, match=r"Cannot reach http://127\.0\.0\.1:9000/"):
            await session.call_tool("get_alerts", {"state": "CA"})
        rs_app = browser.router.transports.pop(RS_ORIGIN)
        with pytest.raises(ClientConnectError, match=r"Cannot reach http://127\.0\.0\.1:8000/"):
            await session.list_tools()
        browser.router.transports.update({AS_ORIGIN: as_app, RS_ORIGIN: rs_app})
        result = await session.call_tool("get_alerts", {"state": "CA"})
    assert not result.is_error
    assert len(browser.opened) == 2  # the server forgot the token: one new sign-in


async def test_server_outage_mid_session_is_explained(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    async with connected(settings, fake_as, browser, lines.append) as session:
        rs_app = browser.router.transports[RS_ORIGIN]
        browser.router.transports[RS_ORIGIN] = httpx2.MockTransport(
            lambda request: httpx2.Response(503, json={"error": "temporarily_unavailable"})
        )
        with pytest.raises(ClientConnectError, match=r"check tokens \(HTTP 503\)") as caught:
            await session.call_tool("get_alerts", {"state": "CA"})
        assert caught.value.error == "temporarily_unavailable"
        browser.router.transports[RS_ORIGIN] = rs_app
        result = await session.call_tool("get_alerts", {"state": "CA"})
    assert not result.is_error


@pytest.mark.parametrize(
    ("retry_after", "when"),
    [
        ("20", "in 20 s"),
        ("soon\x1b[2J", "in a moment"),
        ("9" * 40, "in a moment"),
        (None, "in a moment"),
    ],
)
def test_a_rate_limited_address_is_told_when_to_retry(retry_after: str | None, when: str) -> None:
    headers = {} if retry_after is None else {"retry-after": retry_after}
    error = _status_error(RS_URL, httpx2.Response(429, headers=headers))
    assert error is not None
    assert error.error == "too_many_requests"
    assert str(error) == (
        f"The server at {RS_URL} is refusing this address for now (HTTP 429: too many invalid "
        f"tokens from it); try again {when}."
    )


def test_a_server_failure_status_is_one_line_even_outside_the_hook() -> None:
    error = _status_error(RS_URL, httpx2.Response(502))
    assert error is not None
    assert (str(error), error.error) == (
        f"The MCP server at {RS_URL} failed (HTTP 502).",
        "server_error",
    )


class Recorder(httpx2.AsyncBaseTransport):
    """Passes requests on to `inner` and keeps a copy of each."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[httpx2.Request] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


async def test_every_mcp_request_is_correct_for_the_negotiated_revision(
    settings: ClientSettings, fake_as: FakeAuthServer, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """2026-07-28 (SEP-2575, SEP-2243): `_meta` with version, client info and capabilities, and
    `Mcp-Method` on every request, the pre-flight one included (it used to be a bare `ping`)."""
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        recorder = Recorder(router)
        async with connect(
            settings, write=lines.append, http_transport=recorder, opener=browser.open
        ) as session:
            await session.call_tool("get_alerts", {"state": "CA"})
    posts = [r for r in recorder.sent if str(r.url) == RS_URL and r.method == "POST"]
    methods = []
    for request in posts:
        body = json.loads(request.content)
        methods.append(body["method"])
        assert request.headers["mcp-method"] == body["method"]
        assert request.headers["mcp-protocol-version"] == "2026-07-28"
        meta = body["params"]["_meta"]
        assert meta["io.modelcontextprotocol/protocolVersion"] == "2026-07-28"
        assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "secure-mcp-client"
        assert meta["io.modelcontextprotocol/clientCapabilities"] == {}
    assert "ping" not in methods  # no such method in 2026-07-28
    assert methods[0] == "server/discover"
    assert "tools/call" in methods


class LateCloser:
    """An HTTP server that lets an idle kept-alive connection go stale after `stale_after` s:
    a request arriving on it then is dropped unanswered, as when a request crosses the server's
    keep-alive close on the wire (uvicorn and Node close idle connections after 5 s)."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = None
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                now = time.monotonic()
                if answered is not None and now - answered > self.stale_after:
                    return  # closed without an answer: the client's reuse lost the race
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                answered = now
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.mark.parametrize("keepalive", [0.2, None], ids=["client-expiry", "httpx2-default"])
async def test_idle_connections_are_dropped_before_the_server_drops_them(
    keepalive: float | None, tmp_path: Path
) -> None:
    """The client's idle connections expire before any server's keep-alive timeout, so it never
    sends a request on a connection the server is closing (the conformance suite's ReadError)."""
    server = LateCloser(stale_after=0.4)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    settings = ClientSettings(state_dir=tmp_path, http_keepalive=keepalive or 5.0)
    transport = http_transport(settings) if keepalive else httpx2.AsyncHTTPTransport()
    try:
        async with httpx2.AsyncClient(transport=transport) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
            await asyncio.sleep(0.6)  # idle longer than the server keeps the connection
            if keepalive is None:  # the default reuses the stale connection
                with pytest.raises(httpx2.RemoteProtocolError):
                    await http.get(f"http://127.0.0.1:{port}/")
            else:
                assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
                assert server.connections == 2
    finally:
        listener.close()
        await listener.wait_closed()


def test_the_default_keep_alive_is_shorter_than_the_servers() -> None:
    assert ClientSettings(state_dir=Path()).http_keepalive < 5.0  # uvicorn's and Node's 5 s


@pytest.mark.parametrize(
    ("seconds", "said"), [(300.0, "5 minutes"), (90.0, "90 seconds"), (60.0, "1 minute")]
)
async def test_waiting_for_the_browser_says_how_long_and_how_to_cancel(
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
    seconds: float,
    said: str,
) -> None:
    async with connected(settings, fake_as, browser, lines.append, authorization_timeout=seconds):
        pass
    assert f"Waiting up to {said} for the browser to come back (Ctrl-C cancels)..." in lines


UNREACHABLE_AS = (
    "The MCP server at http://127.0.0.1:8000/mcp cannot reach its authorization server to "
    "check tokens (HTTP 503); is the authorization server running?"
)
CANNOT_CHECK = (
    "The MCP server at http://127.0.0.1:8000/mcp cannot check tokens: its authorization server "
    "refuses the MCP server's own credentials (HTTP 503). Your sign-in is fine; the MCP server "
    "needs fixing (for weather.py: start oauth.py with the same data folder, then try again)."
)
PLAIN_503 = (
    "The MCP server at http://127.0.0.1:8000/mcp is unavailable (HTTP 503); try again in a moment."
)
WHY_503 = [
    pytest.param({"error": "temporarily_unavailable"}, UNREACHABLE_AS, id="as-unreachable"),
    pytest.param({"error": "introspection_refused"}, CANNOT_CHECK, id="cannot-check-tokens"),
    pytest.param(None, PLAIN_503, id="no-reason"),
]


def _503(body: dict[str, str] | None) -> httpx2.MockTransport:
    return httpx2.MockTransport(
        lambda request: httpx2.Response(503, json=body) if body else httpx2.Response(503)
    )


@pytest.mark.parametrize(("body", "message"), WHY_503)
async def test_a_503_says_whether_the_authorization_server_or_the_mcp_server_is_at_fault(
    body: dict[str, str] | None, message: str, settings: ClientSettings, fake_as: FakeAuthServer
) -> None:
    router = Router({AS_ORIGIN: fake_as.app()})
    router.transports[RS_ORIGIN] = _503(body)
    with pytest.raises(ClientConnectError) as caught:
        async with connect(settings, write=[].append, http_transport=router):
            pass
    assert str(caught.value) == message
    assert caught.value.error == "temporarily_unavailable"


@pytest.mark.parametrize(("body", "message"), WHY_503)
async def test_a_503_mid_session_says_the_same(
    body: dict[str, str] | None,
    message: str,
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    lines: list[str],
) -> None:
    async with connected(settings, fake_as, browser, lines.append) as session:
        browser.router.transports[RS_ORIGIN] = _503(body)
        with pytest.raises(ClientConnectError) as caught:
            await session.call_tool("get_alerts", {"state": "CA"})
    assert str(caught.value) == message

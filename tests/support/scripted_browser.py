"""A scripted browser for the client's OAuth tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx2

from secure_mcp.client.auth.interaction import Authorizer
from secure_mcp.client.auth.provider import ProviderParts, SecureOAuthProvider
from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import McpToolSession, connect, preflight
from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import (
    AS_ORIGIN,
    RS_ORIGIN,
    RS_URL,
    FakeAuthServer,
    FakeResource,
    Router,
    running,
    weather_mcp,
)


class ScriptedBrowser:
    """Stands in for the user's browser: follows the authorization redirect to the listener."""

    def __init__(self) -> None:
        self.router: Router | None = None
        self.opened: list[str] = []
        self.callback_pages: list[str] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.rewrite: Callable[[str], str] = lambda location: location

    def open(self, url: str) -> bool:
        """`webbrowser.open`: start the visit in the background, like a real browser."""
        self.opened.append(url)
        task = asyncio.get_running_loop().create_task(self._visit(url))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def location_for(self, url: str) -> str:
        """The authorization server's redirect for `url`."""
        assert self.router is not None
        async with httpx2.AsyncClient(transport=self.router) as client:
            response = await client.get(url)
        assert response.status_code == 302, response.text
        return self.rewrite(response.headers["location"])

    async def _visit(self, url: str) -> None:
        location = await self.location_for(url)
        async with httpx2.AsyncClient() as client:  # the real loopback listener
            page = await client.get(location)
        self.callback_pages.append(page.text)


@asynccontextmanager
async def signed_in_client(
    settings: ClientSettings,
    resource: FakeResource,
    browser: ScriptedBrowser,
    lines: list[str],
    servers: dict[str, FakeAuthServer] | None = None,
) -> AsyncIterator[tuple[httpx2.AsyncClient, SecureOAuthProvider]]:
    """An httpx2 client carrying the provider, routed to the fake servers."""
    authorizer = Authorizer(
        paste=settings.paste,
        open_browser=settings.open_browser,
        write=lines.append,
        opener=browser.open,
        input_fn=input,
        timeout=5,
    )
    storage = FileTokenStorage(settings.state_dir, RS_URL)
    provider = SecureOAuthProvider(ProviderParts(settings, storage, authorizer, lines.append))
    apps = {RS_ORIGIN: resource.app()}
    for origin, server in (servers or {AS_ORIGIN: resource.server}).items():
        apps[origin] = server.app()
    browser.router = Router(apps)
    try:
        async with httpx2.AsyncClient(auth=provider, transport=browser.router) as http:
            yield http, provider
    finally:
        authorizer.close()


async def sign_in(
    settings: ClientSettings, resource: FakeResource, browser: ScriptedBrowser, lines: list[str]
) -> None:
    """Run the preflight request once."""
    async with signed_in_client(settings, resource, browser, lines) as (http, provider):
        await preflight(http, provider)


@asynccontextmanager
async def connected(
    settings: ClientSettings,
    fake_as: FakeAuthServer,
    browser: ScriptedBrowser,
    write: Callable[[str], None],
    **options: Any,
) -> AsyncIterator[McpToolSession]:
    """A connected client: connect() to the weather tools behind `fake_as`, signing in through
    `browser` (whose `router` routes to both servers while the block runs); `options` go to
    connect() (an `opener` there replaces `browser.open`)."""
    options = {"opener": browser.open, **options}
    async with running(weather_mcp(fake_as), fake_as) as router:
        browser.router = router
        async with connect(settings, write=write, http_transport=router, **options) as session:
            yield session

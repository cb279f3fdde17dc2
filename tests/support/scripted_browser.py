"""A scripted browser for the client's OAuth tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx2

from tests.support.client_fakes import Router


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

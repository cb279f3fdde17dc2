"""First sign-in through a real browser: chromium on the real login and consent pages, back
to the client's loopback listener, against the real oauth.py and weather.py."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from secure_mcp.client.connection import connect
from secure_mcp.client.settings import ClientSettings
from tests.support.flows import Stack
from tests.support.oauth_server import OAuthServer

pytestmark = pytest.mark.browser


async def sign_in_like_a_person(page: Page, url: str, oauth: OAuthServer) -> None:
    """Open the authorization URL, log in, allow, and land on the listener's page."""
    await page.goto(url)
    await page.get_by_label("Username").fill(oauth.username)
    await page.get_by_label("Password").fill(oauth.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("button", name="Allow").click()
    await expect(page.get_by_text("You can close this tab")).to_be_visible()


async def test_first_run_signs_in_through_chromium(
    tmp_path: Path, chromium: Browser, live_stack: Stack
) -> None:
    stack = live_stack
    page = await chromium.new_page()
    visits: list[asyncio.Task[None]] = []

    def open_browser(url: str) -> bool:
        visits.append(
            asyncio.get_running_loop().create_task(sign_in_like_a_person(page, url, stack.oauth))
        )
        return True

    settings = ClientSettings(state_dir=tmp_path / "client", server_url=stack.weather.url)
    async with connect(settings, write=[].append, opener=open_browser) as session:
        result = await session.call_tool("get_alerts", {"state": "CA"})
    await asyncio.gather(*visits)  # the page assertions passed
    assert not result.is_error
    assert len(visits) == 1
    assert page.url.startswith("http://127.0.0.1:")
    assert re.search(r"/callback/[0-9a-f]{16}\?", page.url)  # this issuer's own redirect URI

"""--client-metadata-url through a real browser: chromium on the real login and consent pages,
which name the metadata document's client and host, back to the client's loopback listener."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Page, expect

from secure_mcp.client.auth.storage import FileTokenStorage
from secure_mcp.client.connection import connect
from secure_mcp.client.settings import ClientSettings
from tests.support.cimd_stack import (
    CLIENT_NAME,
    CimdStack,
    introspect,
    quiet,
    run_cimd_stack,
)

pytestmark = pytest.mark.browser


async def sign_in_on_the_pages(page: Page, url: str, cimd: CimdStack) -> None:
    """Log in, check what the consent page says about the client, allow, reach the listener."""
    oauth = cimd.stack.oauth
    await page.goto(url)
    await page.get_by_label("Username").fill(oauth.username)
    await page.get_by_label("Password").fill(oauth.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Allow access?")).to_be_visible()
    await expect(page.get_by_text(f"{CLIENT_NAME} asks to act for")).to_be_visible()
    described = page.locator("dd", has_text="a metadata document published at")
    await expect(described.locator("code")).to_have_text("127.0.0.1")
    await expect(page.get_by_text(cimd.url, exact=False)).to_be_visible()
    await expect(page.get_by_role("alert")).to_have_count(0)  # both on this machine: no warning
    await page.get_by_role("button", name="Allow").click()
    await expect(page.get_by_text("You can close this tab")).to_be_visible()


async def test_document_client_signs_in_through_chromium(tmp_path: Path, chromium: Browser) -> None:
    page = await chromium.new_page()
    visits: list[asyncio.Task[None]] = []
    with run_cimd_stack(tmp_path) as cimd:

        def open_browser(url: str) -> bool:
            loop = asyncio.get_running_loop()
            visits.append(loop.create_task(sign_in_on_the_pages(page, url, cimd)))
            return True

        settings = ClientSettings(
            state_dir=tmp_path / "client",
            server_url=cimd.stack.weather.url,
            client_metadata_url=cimd.url,
        )
        async with connect(settings, write=quiet, opener=open_browser) as session:
            result = await session.call_tool("get_alerts", {"state": "CA"})
        await asyncio.gather(*visits)  # the page assertions passed
        assert not result.is_error, result.content
        tokens = await FileTokenStorage(settings.state_dir, cimd.stack.weather.url).get_tokens()
        assert tokens is not None
        assert (await introspect(cimd.stack, tokens.access_token))["client_id"] == cimd.url
        assert "/register" not in cimd.stack.oauth.program.output()
    assert len(visits) == 1
    callback = urlsplit(page.url)
    assert (callback.hostname, callback.path) == ("127.0.0.1", "/callback")
    assert "code" in parse_qs(callback.query)

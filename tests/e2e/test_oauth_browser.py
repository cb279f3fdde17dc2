"""A real browser signs in and allows on the real pages; the redirect reaches the client."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from playwright.async_api import Browser

from tests.support.browser import loopback_listener
from tests.support.oauth_harness import RESOURCE, Flow, authorization_query, pkce, query_of
from tests.support.oauth_server import run_oauth_server

pytestmark = pytest.mark.browser


async def test_sign_in_and_allow_in_chromium(tmp_path: Path, chromium: Browser) -> None:
    with run_oauth_server(tmp_path) as server, loopback_listener() as (redirect_uri, seen):
        async with httpx2.AsyncClient(base_url=server.issuer, timeout=10) as http:
            client = (
                await http.post(
                    "/register",
                    json={
                        "redirect_uris": [redirect_uri],
                        "token_endpoint_auth_method": "none",
                        "client_name": "<b>Browser</b> test",
                    },
                )
            ).json()
        flow = Flow(client, *pkce(), state="browser-state", redirect_uri=redirect_uri)
        query = authorization_query(flow, RESOURCE, scope=None)
        page = await chromium.new_page()
        await page.goto(f"{server.issuer}/authorize?{query}")
        await page.screenshot(path=tmp_path / "login.png", full_page=True)
        heading = page.get_by_role("heading", name="Sign in to Secure MCP authorization server")
        assert await heading.is_visible()
        assert await page.get_by_text(server.issuer, exact=True).is_visible()
        await page.get_by_label("Username").fill(server.username)
        await page.get_by_label("Password").fill(server.password)
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("button", name="Allow").wait_for()
        await page.screenshot(path=tmp_path / "consent.png", full_page=True)
        assert await page.get_by_text("<b>Browser</b> test").first.is_visible()
        assert await page.get_by_text("read weather alerts and forecasts").is_visible()
        allow, deny = (
            page.get_by_role("button", name="Allow"),
            page.get_by_role("button", name="Deny"),
        )
        colour = "element => getComputedStyle(element).backgroundColor"
        assert await allow.evaluate(colour) == "rgb(26, 95, 180)"  # the primary button
        assert await deny.evaluate(colour) == "rgb(255, 255, 255)"
        allow_box, deny_box = await allow.bounding_box(), await deny.bounding_box()
        assert allow_box is not None
        assert deny_box is not None
        assert allow_box["x"] < deny_box["x"]  # first
        await allow.click()
        await page.wait_for_url(f"{redirect_uri}?**")
        final_url = page.url
    params = query_of(final_url)
    assert params["state"] == "browser-state"
    assert params["iss"] == server.issuer
    assert len(params["code"]) >= 43
    assert seen
    assert seen[0].startswith("/callback?code=")

"""Flooding and password guessing: per-source and per-account limits, global bounds, expiry."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import select, update

from secure_mcp.common.ratelimit import Rate
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.storage import Database
from tests.support.oauth_harness import Flow, Harness, pkce, running_harness
from tests.support.oauth_server import TEST_PASSWORD, TEST_USERNAME

STRICT = Rate(3, 3600)  # three at once, then one every 20 minutes: nothing refills in a test


@contextlib.asynccontextmanager
async def server(tmp_path: Path, **overrides: Any) -> AsyncIterator[Harness]:
    """The app in process with some limits overridden."""
    async with running_harness(tmp_path, **overrides) as harness:
        yield harness


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, html
    return match.group(1)


async def try_password(
    oauth: Harness, page: httpx2.Response, username: str, password: str
) -> httpx2.Response:
    data = {"csrf_token": hidden(page.text, "csrf_token"), "tx": hidden(page.text, "tx")}
    return await oauth.http.post(
        "/authorize", data={**data, "username": username, "password": password}
    )


def assert_429_page(response: httpx2.Response, what: str) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert f"Too many {what} from your address. Wait" in response.text
    assert "location" not in response.headers


async def test_registration_is_rate_limited_per_source(tmp_path: Path) -> None:
    async with server(tmp_path, register_rate=STRICT) as oauth:
        for _ in range(3):
            await oauth.register()
        refused = await oauth.http.post(
            "/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}
        )
        assert refused.status_code == 429
        assert refused.json()["error"] == "temporarily_unavailable"
        assert refused.headers["retry-after"] == "1200"
        assert refused.headers["cache-control"] == "no-store"
        other = httpx2.ASGITransport(app=oauth.app, client=("192.0.2.9", 1234))
        async with httpx2.AsyncClient(transport=other, base_url=oauth.settings.issuer) as http:
            elsewhere = await http.post(
                "/register", json={"redirect_uris": ["http://127.0.0.1/cb"]}
            )
        assert elsewhere.status_code == 201  # another source has its own allowance


async def test_authorization_pages_are_rate_limited_per_source(tmp_path: Path) -> None:
    async with server(tmp_path, authorize_rate=STRICT) as oauth:
        flow = Flow(await oauth.register(), *pkce())
        page = await oauth.http.get(oauth.authorization_url(flow))
        assert (await oauth.http.get(oauth.authorization_url(flow))).status_code == 200
        assert (await oauth.http.get(oauth.authorization_url(flow))).status_code == 200
        assert_429_page(await oauth.http.get(oauth.authorization_url(flow)), "requests")
        assert_429_page(await try_password(oauth, page, TEST_USERNAME, TEST_PASSWORD), "requests")
        consent = await oauth.http.get(f"/authorize/consent?tx={hidden(page.text, 'tx')}")
        assert_429_page(consent, "requests")
        assert_429_page(await oauth.http.post("/authorize/signout", data={}), "requests")


async def test_registrations_waiting_for_a_first_use_are_bounded(tmp_path: Path) -> None:
    async with server(tmp_path, max_unused_clients=2) as oauth:
        first = await oauth.register()
        await oauth.register()
        full = await oauth.http.post("/register", json={"redirect_uris": ["http://127.0.0.1/cb"]})
        assert full.status_code == 503
        assert full.json()["error"] == "temporarily_unavailable"
        assert int(full.headers["retry-after"]) > 0
        await oauth.authorize(Flow(first, *pkce()))  # a user allowed it: no longer unused
        assert (await oauth.register())["client_id"]


async def test_unused_registrations_expire(tmp_path: Path) -> None:
    async with server(tmp_path, unused_client_ttl=3600) as oauth:
        used = Flow(await oauth.register(), *pkce())
        await oauth.authorize(used)
        unused = await oauth.register()
        fresh = await oauth.register()
        db = Database(oauth.settings.data_dir, unused_client_ttl=3600)
        async with db.write() as session:
            await session.execute(
                update(Client)
                .where(Client.client_id.in_([used.client["client_id"], unused["client_id"]]))
                .values(issued_at=Client.issued_at - 3601)
            )
        assert await db.cleanup() == 1
        async with db.read() as session:
            left = set(await session.scalars(select(Client.client_id)))
        await db.close()
        assert left == {used.client["client_id"], fresh["client_id"]}
        gone = await oauth.http.get(oauth.authorization_url(Flow(unused, *pkce())))
        assert gone.status_code == 400
        assert "not registered" in gone.text


async def test_failed_sign_ins_are_throttled_per_account(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="secure_mcp.oauth.authorize")
    async with server(tmp_path, login_failures_per_account=STRICT) as oauth:
        flow = Flow(await oauth.register(), *pkce())
        page = await oauth.http.get(oauth.authorization_url(flow))
        for attempt in range(3):
            wrong = await try_password(oauth, page, TEST_USERNAME, f"guess-{attempt}")
            assert wrong.status_code == 200
            assert "Wrong username or password." in wrong.text
        throttled = await try_password(oauth, page, TEST_USERNAME, TEST_PASSWORD)
        assert_429_page(throttled, "failed sign-ins")  # even the right password waits
        # other names do not lock the account out, nor the account them
        other = await try_password(oauth, page, "mallory", "guess")
        assert "Wrong username or password." in other.text
    lines = [r.getMessage() for r in caplog.records if r.name == "secure_mcp.oauth.authorize"]
    client_id = flow.client["client_id"]
    expected = f"sign-in failed: account demo, source 127.0.0.1, client {client_id}"
    assert lines == [expected] * 3 + [
        f"sign-in failed: account (unknown account), source 127.0.0.1, client {client_id}"
    ]
    assert not [line for line in caplog.messages if "guess" in line or "mallory" in line]


async def test_failed_sign_ins_are_throttled_per_source(tmp_path: Path) -> None:
    async with server(tmp_path, login_failures_per_source=Rate(2, 3600)) as oauth:
        page = await oauth.http.get(oauth.authorization_url(Flow(await oauth.register(), *pkce())))
        for name in ("alice", "bob"):  # spraying names from one address
            assert (await try_password(oauth, page, name, "x")).status_code == 200
        assert_429_page(await try_password(oauth, page, "carol", "x"), "failed sign-ins")
        # the correct sign-in from this address waits too, as any guess would
        assert_429_page(
            await try_password(oauth, page, TEST_USERNAME, TEST_PASSWORD), "failed sign-ins"
        )

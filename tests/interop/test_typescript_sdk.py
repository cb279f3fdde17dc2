"""The TypeScript MCP SDK's client (`@modelcontextprotocol/sdk`, Node 22) against the programs.

`ts/client.mjs` runs the SDK's own OAuth: discovery, dynamic registration, PKCE and the
authorization URL; it prints that URL, and this test completes the real login and consent forms
headlessly and hands the redirect back on the script's stdin. The script then lists the tools,
calls get_alerts, waits past the access token's lifetime and calls again (the SDK refreshes on
the 401). The SDK version is pinned exactly in `ts/package.json` (no lock file: it would record
registry addresses); `npm install` puts it in `ts/node_modules` (git-ignored) on first use.
Without Node/npm the test is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest

from tests.support.flows import Stack
from tests.support.headless import authorize_headlessly
from tests.support.tools import require_tool

pytestmark = pytest.mark.process

TS_DIR = Path(__file__).with_name("ts")
NODE = "node@22"
STEP_TIMEOUT = 120.0  # the first run fetches Node 22 through npx


def sdk_version(package_json: Path) -> str | None:
    """The `version` in a package.json, or None when it is missing."""
    if not package_json.exists():
        return None
    return str(json.loads(package_json.read_text(encoding="utf-8"))["version"])


def installed_sdk() -> None:
    """`npm install` the pinned SDK into ts/node_modules unless that version is there already."""
    pinned = json.loads((TS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]
    target = TS_DIR / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
    if sdk_version(target) == pinned["@modelcontextprotocol/sdk"]:
        return
    npm = require_tool(shutil.which("npm"), "npm (Node.js)", "apt-get install -y nodejs npm")
    done = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--prefer-offline"],
        cwd=TS_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        require_tool(None, "@modelcontextprotocol/sdk", f"npm install failed: {done.stderr[-500:]}")


async def sign_in_for(process: asyncio.subprocess.Process, stack: Stack) -> str:
    """Wait for the script's authorization URL, sign in, and send it the redirect."""
    assert process.stdout is not None
    assert process.stdin is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), STEP_TIMEOUT)).decode()
        assert line, "the script ended before asking for authorization"
        if line.startswith("AUTHORIZE "):
            url = line.removeprefix("AUTHORIZE ").strip()
            break
    async with httpx2.AsyncClient(timeout=10) as http:
        location = await authorize_headlessly(
            http, url, username=stack.oauth.username, password=stack.oauth.password
        )
    process.stdin.write(f"{location}\n".encode())
    await process.stdin.drain()
    return url


async def run_script(stack: Stack, past_expiry: float) -> tuple[str, dict[str, Any]]:
    """Run ts/client.mjs under Node 22: (authorization URL, its JSON summary)."""
    npx = require_tool(shutil.which("npx"), "npx (Node.js)", "apt-get install -y nodejs npm")
    process = await asyncio.create_subprocess_exec(
        *(npx, "-y", "-p", NODE, "node", "client.mjs", stack.weather.url, str(past_expiry)),
        cwd=TS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = await sign_in_for(process, stack)
        out, err = await asyncio.wait_for(process.communicate(), STEP_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
    assert process.returncode == 0, err.decode()[-2000:]
    return url, json.loads(out.decode().strip().splitlines()[-1])


async def test_typescript_sdk_client_signs_in_refreshes_and_calls_tools(
    stack: Stack, past_expiry: float
) -> None:
    installed_sdk()
    url, summary = await run_script(stack, past_expiry)

    assert set(summary["tools"]) == {"get_alerts", "get_forecast"}
    assert not summary["first"]["is_error"], summary["first"]
    assert not summary["second"]["is_error"], summary["second"]
    assert summary["first"]["text"] == summary["second"]["text"]

    assert summary["authorizations"] == 1  # one sign-in; the expiry was handled by refresh
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["resource"] == [stack.weather.url]
    assert query["client_id"] == [summary["client_id"]]  # registered dynamically

    assert summary["token_saves"] == 2  # the code exchange, then one refresh
    assert summary["access_rotated"]
    assert summary["refresh_rotated"]  # public client: refresh tokens rotate (OAuth 2.1)

"""The conformance suite's authorization-server scenarios (`conformance authorization`), against
the real oauth.py, the sign-in done by Chromium on the real pages.

The suite fetches the metadata, prints an authorization URL (with `resource`, without `scope`)
and waits on `http://127.0.0.1:<port>/callback`; Chromium signs in and allows, the suite then
redeems the code. A public client is used: the suite authenticates with `none` whenever the
server lists it, even when given a secret (a suite bug, so a confidential client would fail
with 401 here, rightly). Every check must be SUCCESS (no WARNING).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import httpx2
import pytest
from playwright.async_api import Browser

from tests.conformance.suite import conformance, listing
from tests.support.oauth_server import run_oauth_server
from tests.support.processes import ROOT, free_port

pytestmark = [pytest.mark.process, pytest.mark.browser]

SCENARIOS = {"authorization-server-metadata-endpoint", "authorization-code-grant"}
_URL = re.compile(r"https?://\S+/authorize\?\S+")


async def register(issuer: str, redirect_uri: str) -> str:
    """A public client with the suite's callback as its redirect URI."""
    body = {
        "redirect_uris": [redirect_uri],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "MCP conformance suite",
        "application_type": "native",
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(f"{issuer}/register", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


async def authorization_url(process: asyncio.subprocess.Process) -> str:
    """The authorization URL the suite prints (it waits for the callback after it)."""
    assert process.stdout is not None
    seen = []
    while line := (await asyncio.wait_for(process.stdout.readline(), 120)).decode():
        seen.append(line)
        found = _URL.search(line)
        if found:
            return found.group(0)
    raise AssertionError("the suite printed no authorization URL:\n" + "".join(seen))


async def test_authorization_scenarios_pass_against_oauth_py(
    tmp_path: Path, chromium: Browser
) -> None:
    listing()  # skip (or fail under CI) without the suite
    port = free_port()
    resource = f"http://127.0.0.1:{free_port()}/mcp"
    results = tmp_path / "results"
    with run_oauth_server(tmp_path, resources=[resource]) as oauth:
        client_id = await register(oauth.issuer, f"http://127.0.0.1:{port}/callback")
        command = conformance(
            "authorization",
            "--url",
            oauth.issuer,
            "--client-id",
            client_id,
            "--resource",
            resource,
            "-p",
            str(port),
            "-o",
            str(results),
        )
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            url = await authorization_url(process)
            page = await (await chromium.new_context()).new_page()
            await page.goto(url)
            await page.get_by_label("Username").fill(oauth.username)
            await page.get_by_label("Password").fill(oauth.password)
            await page.get_by_role("button", name="Sign in").click()
            await page.get_by_role("button", name="Allow").click()
            await page.wait_for_url(f"http://127.0.0.1:{port}/callback?**")
            output, _ = await asyncio.wait_for(process.communicate(), 120)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-3000:]
    checks: dict[str, list[dict[str, object]]] = {}
    for path in results.glob("**/checks.json"):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", path.parent.name)
        checks[scenario.removeprefix("authorization-server-")] = json.loads(path.read_text())
    assert set(checks) == SCENARIOS, sorted(checks)
    statuses = {
        (scenario, str(check["id"])): str(check["status"])
        for scenario, found in checks.items()
        for check in found
    }
    assert statuses, text[-3000:]
    assert set(statuses.values()) == {"SUCCESS"}, statuses

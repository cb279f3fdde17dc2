"""Adapter the MCP conformance suite runs: `<python> tests/conformance/auth_client.py <URL>`.

It drives the project's own client (`secure_mcp.client.connection.connect`, the
`SecureOAuthProvider` in `secure_mcp.client.auth`, DPoP included) against the suite's test
servers: sign in, list the tools, call the scenario's tools (`test-tool` unless the scenario
names others, `TOOL_CALLS`). The "browser" is headless: it GETs the authorization URL
without following redirects, reads the `Location` the suite's authorization server answers
(carrying `code` and `state`), and delivers it to the client's real loopback listener, as a
browser would. Scenario context (pre-registered credentials) comes in `MCP_CONFORMANCE_CONTEXT`.
Exit status 0 when the tool calls succeeded, 1 with one line on stderr otherwise; on success
the last line on stdout is `SUCCESS_MARKER` (the suite does not record the exit status).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script: make `secure_mcp` importable
    sys.path.insert(0, str(ROOT))

from secure_mcp.client.auth.errors import ClientConnectError  # noqa: E402
from secure_mcp.client.connection import connect  # noqa: E402
from secure_mcp.client.settings import ClientSettings  # noqa: E402
from tests.conformance import machine_adapter  # noqa: E402
from tests.support.headless import BackgroundBrowser  # noqa: E402

# The client ID metadata document URL the suite's `auth/basic-cimd` fixture expects; the
# client uses it only where the authorization server advertises CIMD support.
CONFORMANCE_CIMD_URL = "https://conformance-test.local/client-metadata.json"
TOOL = "test-tool"
SUCCESS_MARKER = "conformance-adapter: tool calls succeeded"
# Scenarios that judge calls of their own tools (name, arguments); the rest call TOOL.
TOOL_CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "tools_call": [("add_numbers", {"a": 2, "b": 3})],
    "http-invalid-tool-headers": [("valid_tool", {"region": "us-west1"})],
}
AUTHORIZATION_TIMEOUT = 15.0  # the suite gives a client 30 s in all


class RedirectFollower(BackgroundBrowser):
    """`webbrowser.open` stand-in: follow the authorization URL's redirect to the loopback.

    `open` visits in the background, as a real browser would, and reports success.
    """

    async def _visit(self, url: str) -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(url, follow_redirects=False)
            location = response.headers.get("location")
            if not response.is_redirect or not location:
                log(f"authorization endpoint answered {response.status_code}, no redirect")
                return
            # The loopback listener checks `state`; the SDK checks `state` and `iss` again.
            await http.get(location, follow_redirects=False)


def log(line: str) -> None:
    """Progress and errors go to stderr (the suite saves it as stderr.txt)."""
    print(line, file=sys.stderr, flush=True)


def context_from(environ: dict[str, str]) -> dict[str, Any]:
    """The scenario's context (a JSON object), or an empty one."""
    raw = environ.get("MCP_CONFORMANCE_CONTEXT", "")
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


async def issuer_of(server_url: str) -> str | None:
    """The authorization server the scenario's own protected-resource metadata names.

    The pre-registration context gives credentials but not their issuer, which the client
    requires (`client_issuer`); a real user configures it, the adapter trusts the suite here.
    """
    parts = urlsplit(server_url)
    url = f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    if response.status_code != 200:
        return None
    servers = response.json().get("authorization_servers") or [None]
    return str(servers[0]) if servers[0] else None


def tool_calls(scenario: str, context: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The calls the scenario judges: its context's `toolCalls`, a known list, or TOOL."""
    listed = context.get("toolCalls")
    if isinstance(listed, list):
        return [(str(call["name"]), dict(call.get("arguments") or {})) for call in listed]
    return TOOL_CALLS.get(scenario, [(TOOL, {})])


async def run(server_url: str, context: dict[str, Any], state_dir: Path, scenario: str = "") -> int:
    """Sign in, list the tools and make the scenario's tool calls; 0 on success."""
    client_id = context.get("client_id")
    settings = ClientSettings(
        state_dir=state_dir,
        server_url=server_url,
        verbose=True,
        client_name="secure-mcp conformance adapter",
        client_metadata_url=context.get("client_metadata_url", CONFORMANCE_CIMD_URL),
        client_id=client_id,
        client_secret=context.get("client_secret"),
        client_issuer=await issuer_of(server_url) if client_id else None,
    )
    if scenario in machine_adapter.SCENARIOS:  # issue 14: clients without a browser
        issuer = await issuer_of(server_url)
        settings = machine_adapter.machine_settings(scenario, context, settings, issuer)
    browser = RedirectFollower()
    async with connect(
        settings, write=log, opener=browser.open, authorization_timeout=AUTHORIZATION_TIMEOUT
    ) as session:
        names = [tool.name for tool in await session.list_tools()]
        log(f"tools: {names}")
        failed = 0
        for name, arguments in tool_calls(scenario, context):
            result = await session.call_tool(name, arguments)
            log(f"{name}: {'failed: ' if result.is_error else ''}{result.content}")
            failed += bool(result.is_error)
    if failed:
        return 1
    print(SUCCESS_MARKER, flush=True)
    return 0


def main(argv: list[str], environ: dict[str, str]) -> int:
    """Entry point: `auth_client.py <server URL>`."""
    if len(argv) != 2:
        log("usage: auth_client.py <server URL>")
        return 2
    with tempfile.TemporaryDirectory(prefix="conformance-client-") as state_dir:
        try:
            scenario = environ.get("MCP_CONFORMANCE_SCENARIO", "")
            return asyncio.run(run(argv[1], context_from(environ), Path(state_dir), scenario))
        except ClientConnectError as exc:
            log(f"client error ({exc.error}): {exc}")
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv, dict(os.environ)))

"""A CI job without a browser: client.py --client-credentials against real oauth.py and weather.py.

The client is registered the way an administrator would (POST /register with the initial access
token), then `client.py --client-credentials --call get_alerts '{"state": "CA"}'` runs with no
terminal input at all: with the client secret, and with a private key (private_key_jwt); and
`--query` with Claude's stand-in calling the tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from tests.support.anthropic_standin import AnthropicStandIn, say, serve_standin, use_tools
from tests.support.oauth_server import OAuthServer, run_oauth_server
from tests.support.processes import ROOT, free_port
from tests.support.weather_server import WeatherServer, run_weather_server

pytestmark = pytest.mark.process

INITIAL_ACCESS_TOKEN = "ci-initial-access-token-" + "z" * 24  # a test value
RUN_TIMEOUT = 60.0


@dataclass
class Stack:
    oauth: OAuthServer
    weather: WeatherServer
    claude: AnthropicStandIn
    claude_url: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp_path = tmp_path_factory.mktemp("machine-e2e")
    port = free_port()
    env = {"OAUTH_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN}
    claude = AnthropicStandIn()
    with (
        serve_standin(claude) as claude_url,
        run_oauth_server(
            tmp_path, resources=[f"http://127.0.0.1:{port}/mcp"], extra_env=env
        ) as oauth,
        run_weather_server(
            tmp_path, auth_server=oauth.issuer, oauth_data_dir=oauth.data_dir, port=port
        ) as weather,
    ):
        yield Stack(oauth, weather, claude, claude_url)
        assert "Traceback" not in oauth.program.output()


async def register(stack: Stack, **metadata: Any) -> dict[str, Any]:
    """Register a client_credentials client as an administrator would."""
    body = {"grant_types": ["client_credentials"], "client_name": "CI job", **metadata}
    headers = {"Authorization": f"Bearer {INITIAL_ACCESS_TOKEN}"}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{stack.oauth.issuer}/register", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@dataclass
class Run:
    code: int
    out: str
    err: str


async def run_client(stack: Stack, state_dir: Path, env: dict[str, str], *args: str) -> Run:
    """client.py with every client variable pinned, no terminal, stdin closed."""
    child_env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "MCP_SERVER_URL": stack.weather.url,
        "MCP_CLIENT_STATE_DIR": str(state_dir),
        "MCP_CLIENT_METADATA_URL": "",
        "MCP_CLIENT_ISSUER": stack.oauth.issuer,
        "MCP_CLIENT_SECRET": "",
        "MCP_CLIENT_PRIVATE_KEY_FILE": "",
        "MCP_CLIENT_SCOPE": "",
        "ANTHROPIC_API_KEY": stack.claude.api_key,
        "ANTHROPIC_BASE_URL": stack.claude_url,
        "ANTHROPIC_MODEL": "claude-sonnet-5-5",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "client.py"),
        *args,
        cwd=ROOT,
        env=child_env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


CALL = ("--client-credentials", "--call", "get_alerts", '{"state": "CA"}')


async def test_client_credentials_call_with_a_secret(stack: Stack, tmp_path: Path) -> None:
    client = await register(stack, token_endpoint_auth_method="client_secret_basic")
    env = {"MCP_CLIENT_ID": client["client_id"], "MCP_CLIENT_SECRET": client["client_secret"]}
    run = await run_client(stack, tmp_path / "state", env, *CALL)
    assert run.code == 0, run.err
    assert "/authorize" not in run.err + run.out
    assert json.loads(run.out)  # the tool's JSON; exit status 0: not an error result
    stack.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("No alerts in CA."))
    query = await run_client(
        stack, tmp_path / "state", env, "--client-credentials", "--query", "CA?"
    )
    assert query.code == 0, query.err
    assert '  ⚙ get_alerts {"state": "CA"}\n' in query.out
    assert stack.claude.requests[-1].tool_results()[0]["is_error"] is False
    wrong = {**env, "MCP_CLIENT_SECRET": "wrong"}
    refused = await run_client(stack, tmp_path / "other", wrong, *CALL)
    assert refused.code == 1
    assert "invalid_client" in refused.err
    assert "Traceback" not in refused.err


async def test_client_credentials_call_with_a_private_key(stack: Stack, tmp_path: Path) -> None:
    key = ECKey.generate_key("P-256")
    client = await register(
        stack,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    pem = tmp_path / "ci-key.pem"
    pem.write_bytes(key.as_pem(private=True))
    pem.chmod(0o600)
    args = ("--client-id", client["client_id"], "--private-key-file", str(pem), *CALL)
    run = await run_client(stack, tmp_path / "state", {}, *args)
    assert run.code == 0, run.err
    assert json.loads(run.out)
    pem.chmod(0o644)
    shared = await run_client(stack, tmp_path / "state2", {}, *args)
    assert shared.code == 1
    assert "readable by other users" in shared.err

"""A CI job without a browser: client.py --client-credentials against real oauth.py and weather.py.

The client is registered the way an administrator would (POST /register with the initial access
token), then `client.py --client-credentials --call get_alerts '{"state": "CA"}'` runs with no
terminal input at all: with the client secret, and with a private key (private_key_jwt); and
`--query` with Claude's stand-in calling the tool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey

from tests.support.anthropic_standin import AnthropicStandIn, say, standin_env, use_tools
from tests.support.client_process import ClientRun, run_client
from tests.support.flows import Stack
from tests.support.machine_clients import BEARER

pytestmark = pytest.mark.process

# Pinned so that a developer's shell or .env cannot choose another way to sign in.
MACHINE_ENV = {"MCP_CLIENT_SECRET": "", "MCP_CLIENT_PRIVATE_KEY_FILE": "", "MCP_CLIENT_SCOPE": ""}


@pytest.fixture
def stack(live_stack: Stack) -> Stack:
    """The run's shared oauth.py + weather.py."""
    return live_stack


async def register(stack: Stack, **metadata: Any) -> dict[str, Any]:
    """Register a client_credentials client as an administrator would."""
    body = {"grant_types": ["client_credentials"], "client_name": "CI job", **metadata}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(f"{stack.oauth.issuer}/register", json=body, headers=BEARER)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def run_machine(
    stack: Stack, claude: AnthropicStandIn, state_dir: Path, env: dict[str, str], *args: str
) -> ClientRun:
    """client.py with every client variable pinned, no terminal, stdin closed."""
    pinned = {"MCP_CLIENT_ISSUER": stack.oauth.issuer, **MACHINE_ENV, **standin_env(claude)}
    return await run_client(stack.weather.url, state_dir, *args, env={**pinned, **env})


CALL = ("--client-credentials", "--call", "get_alerts", '{"state": "CA"}')


async def test_client_credentials_call_with_a_secret(
    stack: Stack, claude: AnthropicStandIn, tmp_path: Path
) -> None:
    client = await register(stack, token_endpoint_auth_method="client_secret_basic")
    env = {"MCP_CLIENT_ID": client["client_id"], "MCP_CLIENT_SECRET": client["client_secret"]}
    run = await run_machine(stack, claude, tmp_path / "state", env, *CALL)
    assert run.code == 0, run.err
    assert "/authorize" not in run.err + run.out
    assert json.loads(run.out)  # the tool's JSON; exit status 0: not an error result
    claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("No alerts in CA."))
    query = await run_machine(
        stack, claude, tmp_path / "state", env, "--client-credentials", "--query", "CA?"
    )
    assert query.code == 0, query.err
    assert '  ⚙ get_alerts {"state": "CA"}\n' in query.out
    assert claude.requests[-1].tool_results()[0]["is_error"] is False
    wrong = {**env, "MCP_CLIENT_SECRET": "wrong"}
    refused = await run_machine(stack, claude, tmp_path / "other", wrong, *CALL)
    assert refused.code == 1
    assert "invalid_client" in refused.err
    assert "Traceback" not in refused.err


async def test_client_credentials_call_with_a_private_key(
    stack: Stack, claude: AnthropicStandIn, tmp_path: Path
) -> None:
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
    run = await run_machine(stack, claude, tmp_path / "state", {}, *args)
    assert run.code == 0, run.err
    assert json.loads(run.out)
    pem.chmod(0o644)
    shared = await run_machine(stack, claude, tmp_path / "state2", {}, *args)
    assert shared.code == 1
    assert "readable by other users" in shared.err

"""The conformance suite's server scenarios that apply to weather.py, with a DPoP-bound token.

weather.py runs with --require-dpop (bearer tokens refused) behind `proxy.signing_proxy`, which
signs every request the suite sends with a fresh proof of the token's key (the suite's `server`
command cannot send a token). The scenarios that apply, at the 2026-07-28 wire:

- `dns-rebinding-protection`: a foreign Host is refused (421), our own served.
- `http-header-validation` (pending in the suite): Mcp-Method / Mcp-Name header checks.
- `server-stateless`: the stateless protocol, except the checks that need the suite's fixture
  tool `test_missing_capability` (SERVER_EXPECTED).
- `caching`, `tools-list`.

The others do not apply: `tools-call-*`, `resources-*`, `prompts-*`, `completion-complete`,
`input-required-result-*`, `json-schema-2020-12`, `http-custom-header-server-validation` and the
`tasks-*` extensions call tools, resources and prompts of the suite's own fixture server (names
like `test_simple_text`), which weather.py does not have (a few pass vacuously, answering
"Unknown tool"); `server-sse-multiple-streams`, `resources-list`, `prompts-list` and
`sep-2164-resource-not-found` pass but test nothing weather.py offers.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import httpx2
import pytest

from tests.conformance.proxy import signing_proxy
from tests.conformance.suite import conformance, listing, read_results, report
from tests.support.dpop import new_key, proof
from tests.support.headless import authorize_headlessly
from tests.support.oauth_harness import pkce, query_of
from tests.support.oauth_server import run_oauth_server
from tests.support.processes import ROOT, free_port
from tests.support.weather_server import run_weather_server

pytestmark = pytest.mark.process

SCENARIOS = (
    "dns-rebinding-protection",
    "http-header-validation",
    "server-stateless",
    "caching",
    "tools-list",
)
# (scenario, check id): the checks that need the suite's fixture server, with why
SERVER_EXPECTED = {
    # the suite calls its fixture tool `test_missing_capability`, absent here
    ("server-stateless", "sep-2575-server-rejects-undeclared-capability"),
    ("server-stateless", "sep-2575-missing-capability-http-400"),
}
SERVER_WARNINGS_ALLOWED = {
    # SHOULDs the SDK's server (mcp 2.3) does not do: serverInfo in each result's _meta, and
    # list-changed notifications on a subscription stream (weather.py's lists never change)
    "server-stateless",
}
REDIRECT = "http://127.0.0.1:9/callback"


async def bound_token(issuer: str, resource: str, username: str, password: str, key: object) -> str:
    """Sign in headlessly and redeem the code with a proof of `key`: a DPoP-bound token."""
    async with httpx2.AsyncClient(timeout=10) as http:
        client = (
            await http.post(
                f"{issuer}/register",
                json={"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"},
            )
        ).json()
        verifier, challenge = pkce()
        query = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "resource": resource,
        }
        location = await authorize_headlessly(
            http, f"{issuer}/authorize?{urlencode(query)}", username=username, password=password
        )
        form = {
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "code_verifier": verifier,
            "client_id": client["client_id"],
            "resource": resource,
        }
        headers = {"DPoP": proof(key, "POST", f"{issuer}/token")}  # type: ignore[arg-type]
        answer = (await http.post(f"{issuer}/token", data=form, headers=headers)).json()
    assert answer["token_type"] == "DPoP", answer
    return str(answer["access_token"])


async def run_scenario(url: str, scenario: str, results: Path) -> tuple[int, str]:
    """One `conformance server` run; its exit status and output."""
    process = await asyncio.create_subprocess_exec(
        *conformance(
            "server",
            "--url",
            url,
            "--scenario",
            scenario,
            "--spec-version",
            "2026-07-28",
            "--force",
            "-o",
            str(results),
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    return process.returncode or 0, output.decode(errors="replace")


async def test_server_scenarios_pass_against_weather_py_with_dpop(tmp_path: Path) -> None:
    listing()  # skip (or fail under CI) without the suite
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    key = new_key()
    results = tmp_path / "results"
    with (
        run_oauth_server(tmp_path, resources=[resource]) as oauth,
        run_weather_server(
            tmp_path,
            auth_server=oauth.issuer,
            oauth_data_dir=oauth.data_dir,
            port=port,
            extra_args=("--require-dpop",),
        ),
    ):
        token = await bound_token(oauth.issuer, resource, oauth.username, oauth.password, key)
        async with signing_proxy(f"http://127.0.0.1:{port}", token, key) as proxy:
            runs = await asyncio.gather(
                *(run_scenario(f"{proxy}/mcp", s, results) for s in SCENARIOS)
            )
    outcomes = read_results(results, prefix="server-")
    text = report(outcomes) + "\n" + "\n".join(output[-1500:] for _, output in runs)
    assert set(SCENARIOS) <= set(outcomes), text
    for scenario in SCENARIOS:
        outcome = outcomes[scenario]
        assert outcome.passed, text
        problems = {
            line.split(":")[0].split()[1]
            for line in outcome.problems
            if not (line.startswith("WARNING") and scenario in SERVER_WARNINGS_ALLOWED)
        }
        expected = {check for name, check in SERVER_EXPECTED if name == scenario}
        assert problems == expected, f"{scenario}:\n{text}"

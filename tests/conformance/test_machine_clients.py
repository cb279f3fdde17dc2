"""The conformance suite's scenarios for clients without a browser, against our client.

Suite 0.2.0-alpha.12 (pinned in `suite.py`, run under Node 22 through npx) has four authorization
extension scenarios this client implements (issue 14), each run on its own at the 2026-07-28
wire through the adapter (`auth_client.py`, settings from `machine_adapter.py`):

- `auth/client-credentials-basic`: client_credentials, client_secret_basic (SEP-1046);
- `auth/client-credentials-jwt`: client_credentials, private_key_jwt with ES256 (RFC 7523 2.2);
- `auth/wif-jwt-bearer`: workload identity federation, jwt-bearer grant (SEP-1933);
- `auth/enterprise-managed-authorization`: ID token -> ID-JAG at the IdP (RFC 8693), then
  jwt-bearer with Basic client authentication (SEP-990).

The suite does not score extension scenarios (nor record the adapter's exit status), so this
test judges them itself: no FAILURE and no WARNING check (a WARNING in `wif-jwt-bearer` means the
client retried or fell back after a refusal), each scenario's own success checks present, and
the adapter's success marker (printed once its tool call with the token succeeded). Without
Node/npx the test is skipped, except under CI, where it fails. Runtime: about 15-30 s (the four
run concurrently).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.auth_client import SUCCESS_MARKER
from tests.conformance.suite import NODE, PACKAGE, conformance, read_results
from tests.support.processes import ROOT
from tests.support.tools import require_tool

pytestmark = pytest.mark.process

ADAPTER = f"{sys.executable} tests/conformance/auth_client.py"
TIMEOUT_S = 240
# Each scenario with the checks that prove the grant was used as the extension says.
SCENARIOS = {
    "auth/client-credentials-basic": {"client-credentials-basic-auth", "valid-bearer-token"},
    "auth/client-credentials-jwt": {"client-credentials-jwt-verified", "valid-bearer-token"},
    "auth/wif-jwt-bearer": {"wif-assertion-verified", "valid-bearer-token"},
    "auth/enterprise-managed-authorization": {
        "complete-flow-token-exchange",
        "complete-flow-jwt-bearer",
    },
}


def probe() -> None:
    """The pinned suite runs here and still lists the four scenarios (skip if it cannot run)."""
    try:
        done = subprocess.run(
            conformance("list", "--client"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0:
        detail = done.stderr[-500:] if done else "timed out"
        require_tool(None, f"{NODE} with {PACKAGE} via npx", f"npm registry reachable? {detail}")
    assert done is not None
    missing = [name for name in SCENARIOS if f"- {name} " not in done.stdout]
    assert not missing, f"the suite no longer lists {missing}"


def run_scenarios(results: Path) -> dict[str, tuple[int, str]]:
    """Run every scenario at once, each as its own suite process; exit status and output."""
    running = {
        name: subprocess.Popen(
            conformance(
                "client",
                "--command",
                ADAPTER,
                "--scenario",
                name,
                "--spec-version",
                "2026-07-28",
                "--force",  # extensions belong to no revision; run them at its wire anyway
                "-o",
                str(results),
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in SCENARIOS
    }
    finished: dict[str, tuple[int, str]] = {}
    try:
        for name, process in running.items():
            output, _ = process.communicate(timeout=TIMEOUT_S)
            finished[name] = (process.returncode, output)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return finished


def adapter_output(results: Path, scenario: str, stream: str) -> str:
    """What the adapter wrote in `scenario` (the suite keeps stdout.txt and stderr.txt)."""
    logs = sorted(results.glob(f"{scenario}-*/{stream}.txt"))
    return logs[-1].read_text(encoding="utf-8") if logs else ""


def passed_checks(results: Path, scenario: str) -> set[str]:
    """The ids of the SUCCESS checks of `scenario`."""
    found: set[str] = set()
    for path in results.glob(f"{scenario}-*/checks.json"):
        for check in json.loads(path.read_text(encoding="utf-8")):
            if check["status"] == "SUCCESS":
                found.add(check["id"])
    return found


def test_machine_client_scenarios_pass(tmp_path: Path) -> None:
    probe()
    results = tmp_path / "results"
    finished = run_scenarios(results)
    outcomes = read_results(results)
    for name, wanted in SCENARIOS.items():
        code, output = finished[name]
        assert name in outcomes, f"{name} did not run:\n{output[-2000:]}"
        assert outcomes[name].problems == [], f"{name}: {outcomes[name].problems}"
        missing = wanted - passed_checks(results, name)
        assert not missing, f"{name}: no SUCCESS for {sorted(missing)}"
        # the exit status is not recorded: the adapter's marker says its tool calls succeeded
        assert SUCCESS_MARKER in adapter_output(results, name, "stdout"), adapter_output(
            results, name, "stderr"
        )
        assert code == 0, f"{name} exited {code}:\n{output[-2000:]}"

"""The official MCP conformance suite's client authorization scenarios, against our client.

`npx -p node@22 -p @modelcontextprotocol/conformance@0.1.16 conformance client --suite S`
starts, per scenario, the suite's own MCP server and authorization server on loopback and runs
`uv run python tests/conformance/auth_client.py <server URL>` (the adapter over
`secure_mcp.client.connection.connect`). Three suites cover every authorization scenario except
the `extension` ones (client credentials, cross-app access: grants this client does not offer):
`auth` (2025-06-18 and 2025-11-25), `backcompat` (2025-03-26) and `draft`. A scenario passes
with no FAILURE and no WARNING check. The failures we expect, each with the reason it lies in the
suite, are in `expected-failures.yml`; anything else failing, or a listed scenario passing, fails
this test. Without Node/npx (or when npm cannot fetch Node 22) the test is skipped, except under
CI, where it fails. Runtime: about 40 s (the three suites run concurrently).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import ROOT
from tests.support.tools import require_tool

pytestmark = pytest.mark.process

PACKAGE = "@modelcontextprotocol/conformance@0.1.16"
NODE = "node@22"
SUITES = ("auth", "backcompat", "draft")
ADAPTER = "uv run python tests/conformance/auth_client.py"
EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.yml")
CLIENT_TIMEOUT_MS = 60_000  # per scenario; the suites run in parallel on a small machine
SUITE_TIMEOUT_S = 300
_TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
_LISTED = re.compile(r"^\s+- (auth/\S+)(?: \[([^\]]*)\])?$")


def conformance(*args: str) -> list[str]:
    """The npx command line running the pinned suite under Node 22."""
    npx = require_tool(shutil.which("npx"), "npx (Node.js)", "apt-get install -y nodejs npm")
    return [npx, "-y", "-p", NODE, "-p", PACKAGE, "conformance", *args]


def expected_failures() -> set[str]:
    """The scenario names under `client:` in expected-failures.yml (comments ignored)."""
    names: set[str] = set()
    for line in EXPECTED_FAILURES.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s+-\s+(\S+)\s*$", line)
        if match:
            names.add(match.group(1))
    return names


def auth_scenarios(listing: str) -> set[str]:
    """Every `auth/` client scenario the suite lists, without the `extension` ones."""
    found = set()
    for line in listing.splitlines():
        match = _LISTED.match(line)
        if match and "extension" not in (match.group(2) or ""):
            found.add(match.group(1))
    return found


@dataclass
class Outcome:
    """One scenario's result: its failing checks (FAILURE or WARNING), if any."""

    scenario: str
    passed: int = 0
    problems: list[str] = field(default_factory=list)


def read_results(results: Path) -> dict[str, Outcome]:
    """Each scenario's outcome from the suite's `<scenario>-<timestamp>/checks.json` files."""
    outcomes: dict[str, Outcome] = {}
    for path in sorted(results.glob("**/checks.json")):
        name = _TIMESTAMP.sub("", path.parent.relative_to(results).as_posix())
        outcome = outcomes.setdefault(name, Outcome(name))
        for check in json.loads(path.read_text(encoding="utf-8")):
            if check["status"] == "SUCCESS":
                outcome.passed += 1
            elif check["status"] in {"FAILURE", "WARNING"}:
                text = check.get("errorMessage") or check.get("description", "")
                outcome.problems.append(f"{check['status']} {check['id']}: {text}")
    return outcomes


def probe() -> str:
    """`conformance list --client`, proving Node 22 and the suite run here (skip if not)."""
    try:
        done = subprocess.run(
            conformance("list", "--client"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        done = None
    if done is None or done.returncode != 0 or "auth/" not in done.stdout:
        detail = done.stderr[-500:] if done else "timed out"
        require_tool(None, f"{NODE} with {PACKAGE} via npx", f"npm registry reachable? {detail}")
    return done.stdout if done else ""


def run_suites(results: Path) -> dict[str, tuple[int, str]]:
    """Run the suites concurrently; each suite's exit status and output."""
    running = {
        suite: subprocess.Popen(
            conformance(
                "client",
                "--command",
                ADAPTER,
                "--suite",
                suite,
                "--timeout",
                str(CLIENT_TIMEOUT_MS),
                "--expected-failures",
                str(EXPECTED_FAILURES),
                "-o",
                str(results),
            ),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for suite in SUITES
    }
    finished: dict[str, tuple[int, str]] = {}
    try:
        for suite, process in running.items():
            output, _ = process.communicate(timeout=SUITE_TIMEOUT_S)
            finished[suite] = (process.returncode, output)
    finally:
        for process in running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return finished


def summary(output: str) -> str:
    """The suite's own summary (from `=== SUITE SUMMARY ===` on)."""
    return output[output.find("=== SUITE SUMMARY ===") :]


def test_every_auth_scenario_passes_or_is_an_expected_failure(tmp_path: Path) -> None:
    wanted = auth_scenarios(probe())
    expected = expected_failures()
    finished = run_suites(tmp_path / "results")
    outcomes = read_results(tmp_path / "results")

    report = "\n".join(
        f"{name}: {'ok' if not o.problems else '; '.join(o.problems)}"
        for name, o in sorted(outcomes.items())
    )
    assert wanted <= set(outcomes), f"scenarios not run: {sorted(wanted - set(outcomes))}"
    assert expected <= wanted, f"unknown expected failures: {sorted(expected - wanted)}"
    failed = {name for name, outcome in outcomes.items() if outcome.problems}
    assert failed - expected == set(), f"unexpected failures:\n{report}"
    assert expected - failed == set(), f"stale expected failures (now passing):\n{report}"
    assert all(outcomes[name].passed for name in wanted - expected), report
    for suite, (code, output) in finished.items():
        assert code == 0, f"suite {suite} exited {code}:\n{summary(output)}"

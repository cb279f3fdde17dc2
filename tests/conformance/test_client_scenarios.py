"""The conformance suite's client scenarios required for MCP 2026-07-28, and the DPoP ones.

`conformance client --requirements 2026-07-28` runs, per scenario, the suite's own MCP server
and authorization server on loopback and our adapter (`auth_client.py`, the project's client)
against them, at the 2026-07-28 (stateless) wire: the 32 scored scenarios (25 authorization,
7 plain MCP) and the 6 authorization extensions, which the suite runs but never scores. We judge
every scenario's `checks.json` ourselves: a scenario passes with no FAILURE and no WARNING. The
scored failures we expect are in `expected-failures.yml` (the suite's own format, so the suite's
exit status agrees); the extension failures in EXTENSIONS_EXPECTED. Anything else failing, or a
listed scenario passing, fails this test. `auth/dpop` and `auth/dpop-nonce` must pass.
Runtime: about a minute on two idle cores (the scenarios run concurrently).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.auth_client import SUCCESS_MARKER
from tests.conformance.suite import (
    conformance,
    expected_failures,
    listing,
    read_results,
    report,
)
from tests.support.processes import ROOT

pytestmark = pytest.mark.process

# The venv's python: no `uv run` per scenario (faster, and no lock contention between them)
ADAPTER = f"{sys.executable} tests/conformance/auth_client.py"
EXPECTED_FAILURES = Path(__file__).with_name("expected-failures.yml")
CLIENT_TIMEOUT_MS = 60_000  # per scenario; they run in parallel on a small machine
SUITE_TIMEOUT_S = 600
DPOP = frozenset({"auth/dpop", "auth/dpop-nonce"})  # SEP-1932, issue 13: must pass
# Extensions expected to fail: none. The machine-client ones (issue 14: client credentials with
# a secret or a private_key_jwt assertion, workload identity, enterprise-managed authorization)
# pass here too; tests/conformance/test_machine_clients.py also checks their own SUCCESS checks.
EXTENSIONS_EXPECTED: frozenset[str] = frozenset()
# Scenarios after which the client must have stopped: no tool call, so no success marker.
MUST_STOP = frozenset(
    {
        "auth/resource-mismatch",
        "auth/scope-retry-limit",
        "auth/metadata-issuer-mismatch",
        "auth/iss-supported-missing",
        "auth/iss-wrong-issuer",
        "auth/iss-unexpected",
    }
)


def test_required_client_scenarios_and_dpop(tmp_path: Path) -> None:
    found = listing()
    results = tmp_path / "results"
    done = subprocess.run(
        conformance(
            "client",
            "--command",
            ADAPTER,
            "--requirements",
            "2026-07-28",
            "--timeout",
            str(CLIENT_TIMEOUT_MS),
            "--expected-failures",
            str(EXPECTED_FAILURES),
            "-o",
            str(results),
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT_S,
        check=False,
    )
    outcomes = read_results(results)
    text = report(outcomes)
    wanted = found.client | found.client_extensions
    assert found.client_extensions >= DPOP, sorted(found.client_extensions)
    assert wanted <= set(outcomes), f"scenarios not run: {sorted(wanted - set(outcomes))}"
    expected = expected_failures(EXPECTED_FAILURES) | EXTENSIONS_EXPECTED
    assert expected <= wanted, f"unknown expected failures: {sorted(expected - wanted)}"
    failed = {name for name in wanted if outcomes[name].problems}
    assert failed - expected == set(), f"unexpected failures:\n{text}"
    assert expected - failed == set(), f"stale expected failures (now passing):\n{text}"
    assert all(outcomes[name].passed for name in wanted - expected), text
    assert done.returncode == 0, done.stdout[done.stdout.find("=== SUITE SUMMARY") :]
    for name in DPOP:  # the exit status is not recorded: the adapter's marker says it got there
        stdout = next(results.glob(f"{name}-*/stdout.txt")).read_text(encoding="utf-8")
        assert SUCCESS_MARKER in stdout, f"{name}: the adapter did not finish its tool call"
    for name in MUST_STOP & wanted:
        stdout = next(results.glob(f"{name}-*/stdout.txt")).read_text(encoding="utf-8")
        assert SUCCESS_MARKER not in stdout, f"{name}: the client went on to call a tool"

"""The MCP conformance suite, pinned: its command line, its scenario lists and its results.

`npx -y -p node@22 -p @modelcontextprotocol/conformance@0.2.0-alpha.12 conformance ...`. Without
Node/npx (or when npm cannot fetch the package) the tests that need it are skipped, except under
CI, where they fail (`require_tool`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import ROOT
from tests.support.tools import require_tool

PACKAGE = "@modelcontextprotocol/conformance@0.2.0-alpha.12"
NODE = "node@22"
REQUIREMENTS = "2026-07-28"
LIST_TIMEOUT_S = 300
_TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
_ITEM = re.compile(r"^\s+- (\S+)(?: \[(\w+)\])?$")


def conformance(*args: str) -> list[str]:
    """The npx command line running the pinned suite under Node 22."""
    npx = require_tool(shutil.which("npx"), "npx (Node.js)", "apt-get install -y nodejs npm")
    return [npx, "-y", "-p", NODE, "-p", PACKAGE, "conformance", *args]


@dataclass(frozen=True)
class Listing:
    """`conformance list --requirements R`: the scored client and server scenarios, and the
    extension scenarios (run, never scored) for clients."""

    client: frozenset[str]
    server: frozenset[str]
    client_extensions: frozenset[str]


def parse_listing(text: str) -> Listing:
    """The scenario names of a `list --requirements` output."""
    client: set[str] = set()
    server: set[str] = set()
    extensions: set[str] = set()
    section = ""
    for line in text.splitlines():
        if line.startswith("Server scenarios"):
            section = "server"
        elif line.startswith("Client scenarios"):
            section = "client"
        elif re.match(r"^\s+[\w-]+ \(\d+\):$", line):  # "  extension (16):", "  pending (3):"
            section = line.split()[0]
        elif not line.startswith(" "):
            section = "" if line.strip() else section
        match = _ITEM.match(line)
        if not match:
            continue
        name, side = match.groups()
        if section == "client":
            client.add(name)
        elif section == "server":
            server.add(name)
        elif section == "extension" and side == "client":
            extensions.add(name)
    return Listing(frozenset(client), frozenset(server), frozenset(extensions))


def listing() -> Listing:
    """The suite's own list for REQUIREMENTS, proving Node 22 and the suite run here."""
    try:
        done = subprocess.run(
            conformance("list", "--requirements", REQUIREMENTS),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=LIST_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        done = None
    found = parse_listing(done.stdout) if done and done.returncode == 0 else None
    if done is None or found is None or not found.client:
        detail = done.stderr[-500:] if done else "timed out"
        require_tool(None, f"{NODE} with {PACKAGE} via npx", f"npm registry reachable? {detail}")
    assert found is not None
    return found


@dataclass
class Outcome:
    """One scenario's checks: how many passed, and those that did not (FAILURE or WARNING)."""

    scenario: str
    passed: int = 0
    problems: list[str] = field(default_factory=list)
    failed_ids: set[str] = field(default_factory=set)


def read_results(results: Path, prefix: str = "") -> dict[str, Outcome]:
    """Each scenario's outcome from the suite's `<prefix><scenario>-<timestamp>/checks.json`."""
    outcomes: dict[str, Outcome] = {}
    for path in sorted(results.glob("**/checks.json")):
        name = _TIMESTAMP.sub("", path.parent.relative_to(results).as_posix())
        name = name.removeprefix(prefix)
        outcome = outcomes.setdefault(name, Outcome(name))
        for check in json.loads(path.read_text(encoding="utf-8")):
            if check["status"] == "SUCCESS":
                outcome.passed += 1
            elif check["status"] in {"FAILURE", "WARNING"}:
                text = check.get("errorMessage") or check.get("description", "")
                outcome.problems.append(f"{check['status']} {check['id']}: {text}")
                outcome.failed_ids.add(check["id"])
    return outcomes


def report(outcomes: dict[str, Outcome]) -> str:
    """One line per scenario: ok with its passed checks, or its problems."""
    return "\n".join(
        f"{name}: {f'ok ({o.passed})' if not o.problems else '; '.join(o.problems)}"
        for name, o in sorted(outcomes.items())
    )


def expected_failures(path: Path, side: str = "client") -> set[str]:
    """The entries under `side:` of an --expected-failures YAML file (comments ignored)."""
    names: set[str] = set()
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"^\w+:\s*$", line):
            current = line.rstrip(":").strip()
        match = re.match(r"^\s+-\s+(\S+)\s*$", line)
        if match and current == side:
            names.add(match.group(1))
    return names

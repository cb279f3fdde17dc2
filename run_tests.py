"""Run the test suite with branch coverage: `uv run python run_tests.py [NAME ...]`.

Without arguments every test runs and coverage below 95% fails the run. With arguments,
each names tests to select (pytest `-k`, joined with `or`) and the coverage floor is off,
since a selection covers only part of the package. Exits with pytest's code.

The programs install only what they need; the test tools are the `test` extra. When they are
missing (a fresh clone, or plain `python run_tests.py` outside the project's environment) the
script runs itself again through `uv run --extra test`, or says in one line how to run it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

COVERAGE_FLOOR = 95
TEST_MODULES = ("pytest", "pytest_cov", "pytest_asyncio", "hypothesis", "playwright")
REEXEC_GUARD = "SECURE_MCP_RUN_TESTS_REEXEC"
HERE = Path(__file__).resolve().parent

Exec = Callable[[str, list[str], Mapping[str, str]], NoReturn]


def build_args(selection: list[str]) -> list[str]:
    """The pytest arguments for a run selecting `selection` (all tests when empty)."""
    args = [
        "--cov=secure_mcp",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
    ]
    if selection:
        args += ["-k", " or ".join(selection), "--cov-fail-under=0"]
    else:
        args.append(f"--cov-fail-under={COVERAGE_FLOOR}")
    return args


def missing_modules() -> list[str]:
    """The test tools this interpreter cannot import."""
    return [name for name in TEST_MODULES if importlib.util.find_spec(name) is None]


def main(
    argv: list[str],
    env: Mapping[str, str] = os.environ,
    execute: Exec = os.execvpe,
    which: Callable[[str], str | None] = shutil.which,
    find_missing: Callable[[], list[str]] = missing_modules,
) -> int:
    """Run pytest and return its exit code; re-run through uv when the test tools are missing."""
    missing = find_missing()
    if missing:
        uv = which("uv")
        if uv is None or env.get(REEXEC_GUARD):
            print(
                f"run_tests.py: the test tools are not installed here ({', '.join(missing)}); "
                "run `uv run python run_tests.py` from the project folder "
                "(install uv with `pip install uv`)",
                file=sys.stderr,
            )
            return 2
        command = [uv, "run", "--project", str(HERE), "--extra", "test", "python", __file__]
        execute(uv, [*command, *argv], {**env, REEXEC_GUARD: "1"})
    import pytest  # here, not at the top: plain `python run_tests.py` may lack it

    return int(pytest.main(build_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

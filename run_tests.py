"""Run the test suite with branch coverage: `python run_tests.py [NAME ...]`.

Without arguments every test runs and coverage below 95% fails the run. With arguments,
each names tests to select (pytest `-k`, joined with `or`) and the coverage floor is off,
since a selection covers only part of the package. Exits with pytest's code.
"""

from __future__ import annotations

import sys

import pytest

COVERAGE_FLOOR = 95


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


def main(argv: list[str]) -> int:
    """Run pytest and return its exit code."""
    return int(pytest.main(build_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The slow-client and connection limits: flags over environment over defaults, checked."""

from __future__ import annotations

import argparse

import pytest

from secure_mcp.common.connection_limits import ConnectionLimits, add_limit_flags, limits_from


def parse(argv: list[str], env: dict[str, str]) -> ConnectionLimits:
    parser = argparse.ArgumentParser()
    add_limit_flags(parser, "TEST")
    return limits_from(parser.parse_args(argv), env, "TEST")


def test_defaults() -> None:
    assert parse([], {}) == ConnectionLimits(10.0, 30.0, 512, 256)


def test_flags_override_environment() -> None:
    env = {"TEST_HEADER_TIMEOUT": "2.5", "TEST_BODY_TIMEOUT": "4", "TEST_MAX_CONNECTIONS": "100"}
    argv = ["--body-timeout", "5", "--max-connections-per-source", "7"]
    assert parse(argv, env) == ConnectionLimits(2.5, 5.0, 100, 7)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param([], {"TEST_HEADER_TIMEOUT": "soon"}, "TEST_HEADER_TIMEOUT must be", id="nan"),
        pytest.param([], {"TEST_MAX_CONNECTIONS": "1.5"}, "TEST_MAX_CONNECTIONS", id="not-int"),
        pytest.param(["--header-timeout", "0"], {}, "timeouts must be positive", id="zero"),
        pytest.param(["--body-timeout", "-1"], {}, "timeouts must be positive", id="negative"),
        pytest.param(["--max-connections", "0"], {}, "at least 1", id="no-connections"),
        pytest.param(
            ["--max-connections", "10", "--max-connections-per-source", "11"],
            {},
            "cannot exceed",
            id="per-source-over-overall",
        ),
    ],
)
def test_bad_values(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(argv, env)


def test_help_names_the_environment_variables() -> None:
    parser = argparse.ArgumentParser()
    add_limit_flags(parser, "WEATHER")
    text = parser.format_help()
    for name in ("HEADER_TIMEOUT", "BODY_TIMEOUT", "MAX_CONNECTIONS", "MAX_CONNECTIONS_PER_SOURCE"):
        assert f"WEATHER_{name}" in text

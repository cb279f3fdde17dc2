"""The environment variables are declared once, with the options: --help and .env.example agree."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

import pytest

from secure_mcp.client import cli
from secure_mcp.common.settings import Options
from secure_mcp.oauth import settings as oauth_settings
from secure_mcp.weather import settings as weather_settings
from tests.support.processes import ROOT

PROGRAMS: dict[str, tuple[Options, Callable[[], argparse.ArgumentParser]]] = {
    "oauth.py": (oauth_settings.OPTIONS, oauth_settings.build_parser),
    "weather.py": (weather_settings.OPTIONS, weather_settings.build_parser),
    "client.py": (cli.OPTIONS, cli.build_parser),
}


def example_variables() -> list[str]:
    """Every variable .env.example sets or shows commented out."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE)


@pytest.mark.parametrize("program", PROGRAMS)
def test_help_names_every_declared_variable(program: str) -> None:
    options, build_parser = PROGRAMS[program]
    shown = " ".join(build_parser().format_help().split())
    assert [name for name in options.env_names() if name not in shown] == []


@pytest.mark.parametrize("program", PROGRAMS)
def test_env_example_lists_every_declared_variable(program: str) -> None:
    options, _ = PROGRAMS[program]
    listed = example_variables()
    assert [name for name in options.env_names() if name not in listed] == []


def test_env_example_lists_only_declared_variables() -> None:
    declared = {name for options, _ in PROGRAMS.values() for name in options.env_names()}
    listed = example_variables()
    assert [name for name in listed if name not in declared] == []
    assert len(listed) == len(set(listed))  # each once

"""Fixtures for the client tests: a fake authorization server and a scripted browser."""

from __future__ import annotations

from pathlib import Path

import pytest

from secure_mcp.client.settings import ClientSettings
from tests.support.client_fakes import RS_URL, FakeAuthServer
from tests.support.scripted_browser import ScriptedBrowser


@pytest.fixture
def fake_as() -> FakeAuthServer:
    """A well-behaved authorization server."""
    return FakeAuthServer()


@pytest.fixture
def browser() -> ScriptedBrowser:
    """A browser that completes authorization without a person."""
    return ScriptedBrowser()


@pytest.fixture
def settings(tmp_path: Path) -> ClientSettings:
    """Client settings pointing at the fake resource server, state in tmp_path."""
    return ClientSettings(state_dir=tmp_path / "state", server_url=RS_URL)


@pytest.fixture
def lines() -> list[str]:
    """What the client wrote."""
    return []

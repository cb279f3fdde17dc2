"""Fixtures: the authorization server in process, with an HTTP client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.oauth_harness import Harness, running_harness


@pytest.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running app (lifespan entered) and a client whose cookies persist like a browser's."""
    async with running_harness(tmp_path) as harness:
        yield harness

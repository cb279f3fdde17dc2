"""Fixtures: the authorization server in process, with an HTTP client bound to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from tests.support.oauth_harness import Harness
from tests.support.oauth_server import running_oauth_app


@pytest.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[Harness]:
    """A running app (lifespan entered) and a client whose cookies persist like a browser's."""
    async with running_oauth_app(tmp_path) as (app, settings):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=settings.issuer) as client:
            yield Harness(app, settings, client)

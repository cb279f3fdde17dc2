"""Hypothesis profiles for the fuzz suite, and the authorization server in process.

`ci` (the default) is derandomized: the same examples every run, no example database, so a
failure in CI reproduces locally. `HYPOTHESIS_PROFILE=explore` draws fresh random examples
(and keeps failures in .hypothesis/) for a longer local hunt; scale counts with FUZZ_SCALE.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, settings

from tests.support.fuzz_strategies import Target
from tests.support.oauth_server import running_oauth_app

_COMMON: dict[str, Any] = {
    "deadline": None,
    "print_blob": True,
    # One server per test serves every example: state piling up across examples is the point.
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
async def target(tmp_path: Path) -> AsyncIterator[Target]:
    """The authorization server in process, with one registered public client."""
    from secure_mcp.common.resource_credentials import load_all

    async with running_oauth_app(tmp_path) as (app, conf):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url=conf.issuer) as http:
            redirect = "http://127.0.0.1:33333/callback"
            registered = await http.post(
                "/register",
                json={"redirect_uris": [redirect], "token_endpoint_auth_method": "none"},
            )
            assert registered.status_code == 201
            cred = load_all(conf.data_dir)[conf.resources[0]]
            yield Target(
                http,
                registered.json()["client_id"],
                redirect,
                conf.resources[0],
                (cred.client_id, cred.client_secret),
            )

"""The real oauth.py + weather.py (NWS replayed) with short-lived access tokens, for interop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.flows import Stack, run_stack
from tests.support.machine_clients import INITIAL_ACCESS_TOKEN

ACCESS_TOKEN_TTL = 3  # seconds: the tests wait past it to see the client refresh
JWT_SKEW = 5  # weather.py accepts a JWT this long after its exp (clock skew)


@pytest.fixture(scope="module", params=["opaque", "jwt"])
def token_format(request: pytest.FixtureRequest) -> str:
    """Each interop test runs against each access token format."""
    return str(request.param)


@pytest.fixture(scope="module")
def past_expiry(token_format: str) -> float:
    """Seconds to wait until weather.py refuses a token issued now."""
    skew = JWT_SKEW if token_format == "jwt" else 0
    return ACCESS_TOKEN_TTL + skew + 1.5


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, token_format: str) -> Iterator[Stack]:
    """Both programs on loopback, in each access token format; tokens live ACCESS_TOKEN_TTL s."""
    env = {
        "OAUTH_ACCESS_TOKEN_TTL": str(ACCESS_TOKEN_TTL),
        "OAUTH_ACCESS_TOKEN_FORMAT": token_format,
        "OAUTH_INITIAL_ACCESS_TOKEN": INITIAL_ACCESS_TOKEN,  # machine clients (issue 14)
    }
    with run_stack(tmp_path_factory.mktemp("interop"), oauth_env=env) as running:
        yield running

"""Introspection amplification: bogus bearer tokens must not each cost oauth.py a lookup.

Tokens are built here from the documented format (`smcp_at_` + 43 URL-safe characters + `_` +
CRC32 of the rest in 8 hex digits), independently of the code that mints them.
"""

from __future__ import annotations

import contextlib
import secrets
import zlib
from collections.abc import AsyncIterator

import httpx2
import pytest

from tests.support.attack_stack import FAILED_TOKEN_LIMIT
from tests.support.flows import INITIALIZE, MCP_ACCEPT, Stack, assert_invalid_token

pytestmark = pytest.mark.process

INTROSPECTION = '"POST /introspect HTTP/1.1"'


def well_formed(prefix: str = "smcp_at_") -> str:
    """A token with a valid prefix and checksum that oauth.py never issued."""
    body = secrets.token_urlsafe(32)
    return f"{prefix}{body}_{zlib.crc32((prefix + body).encode()):08x}"


def introspections(stack: Stack) -> int:
    """Introspection requests oauth.py has answered so far (its access log)."""
    return stack.oauth.program.output().count(INTROSPECTION)


@contextlib.asynccontextmanager
async def client_from(source: str) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client whose connections leave from `source`."""
    transport = httpx2.AsyncHTTPTransport(local_address=source)
    async with httpx2.AsyncClient(transport=transport, timeout=10) as http:
        yield http


async def present(
    http: httpx2.AsyncClient, stack: Stack, token: str, **headers: str
) -> httpx2.Response:
    """An MCP initialize with `token` as the bearer credential."""
    sent = {"accept": MCP_ACCEPT, "authorization": f"Bearer {token}", **headers}
    return await http.post(stack.weather.url, json=INITIALIZE, headers=sent)


def garbage_tokens() -> list[str]:
    """Tokens that fail the local check: old format, bad checksum, wrong prefix, truncated."""
    good = well_formed()
    return [
        secrets.token_urlsafe(32),  # what oauth.py issued before the format existed
        good[:-1] + ("0" if good[-1] != "0" else "1"),
        well_formed("smcp_rt_"),  # a refresh token is never a bearer credential
        well_formed("ghp_xxx_"),
        good[:-3],
        good + "0",
    ]


async def test_malformed_tokens_cost_no_introspection(stack: Stack) -> None:
    before = introspections(stack)
    async with client_from("127.0.20.1") as http:
        for token in garbage_tokens() * 3:
            assert_invalid_token(await present(http, stack, token))
    assert introspections(stack) == before


async def test_failed_tokens_are_rate_limited_per_source(stack: Stack) -> None:
    before = introspections(stack)
    statuses: list[int] = []
    async with client_from("127.0.21.1") as http:
        # The bucket refills one token per 60/LIMIT s, so on a loaded machine a few more than
        # LIMIT may pass before the first refusal: send until refused, then back to back.
        for _ in range(FAILED_TOKEN_LIMIT * 3):
            response = await present(http, stack, well_formed())
            statuses.append(response.status_code)
            if response.status_code == 429:
                break
        assert 429 in statuses
        first_refusal = statuses.index(429)
        assert first_refusal >= FAILED_TOKEN_LIMIT
        assert set(statuses[:first_refusal]) == {401}
        response = await present(http, stack, well_formed())  # the bucket is still empty
        assert response.status_code == 429
        assert response.json()["error"] == "too_many_requests"
        assert 1 <= int(response.headers["retry-after"]) <= 5
        # Only the refused ones were looked up; the refusals past the limit cost nothing.
        assert introspections(stack) == before + statuses.count(401)
        # A forged X-Forwarded-For does not make the same client a new source.
        forged = await present(http, stack, well_formed(), **{"x-forwarded-for": "10.9.8.7"})
        assert forged.status_code == 429
    async with client_from("127.0.21.2") as other:  # another source is not affected
        assert_invalid_token(await present(other, stack, well_formed()))

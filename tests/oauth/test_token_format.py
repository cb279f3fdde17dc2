"""Issued tokens carry a type prefix and a checksum; tokens from before the format still work."""

from __future__ import annotations

import re
import secrets
import zlib
from collections.abc import Callable

import pytest
from sqlalchemy import update

from secure_mcp.common import token_format
from secure_mcp.oauth.models import Token
from secure_mcp.oauth.storage import Database, token_hash
from tests.support.oauth_harness import Harness

SHAPE = re.compile(r"smcp_(at|rt)_[A-Za-z0-9_-]{43}_[0-9a-f]{8}")


def checksum_ok(token: str) -> bool:
    """The documented checksum, computed independently: CRC32 of all but the last 9 characters."""
    return f"{zlib.crc32(token[:-9].encode()):08x}" == token[-8:]


async def test_issued_tokens_have_the_format(oauth: Harness) -> None:
    flow = await oauth.new_flow()
    first = (await oauth.redeem(flow)).json()
    refreshed = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": flow.client["client_id"],
        }
    )
    for body in (first, refreshed.json()):
        access, refresh = body["access_token"], body["refresh_token"]
        assert SHAPE.fullmatch(access)
        assert access.startswith("smcp_at_")
        assert SHAPE.fullmatch(refresh)
        assert refresh.startswith("smcp_rt_")
        assert checksum_ok(access)
        assert checksum_ok(refresh)
        assert token_format.well_formed(access, token_format.ACCESS_PREFIX)
        assert token_format.well_formed(refresh, token_format.REFRESH_PREFIX)
        assert not token_format.well_formed(refresh, token_format.ACCESS_PREFIX)


async def test_tokens_issued_before_the_format_still_refresh(oauth: Harness) -> None:
    # A token from an older oauth.py: plain token_urlsafe(32), looked up by its hash.
    flow = await oauth.new_flow()
    issued = (await oauth.redeem(flow)).json()
    old_access, old_refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db = Database(oauth.settings.data_dir)
    async with db.write() as session:
        for new, old in (
            (issued["access_token"], old_access),
            (issued["refresh_token"], old_refresh),
        ):
            await session.execute(
                update(Token)
                .where(Token.token_hash == token_hash(new))
                .values(token_hash=token_hash(old))
            )
    await db.close()
    assert (await oauth.introspect(old_access))["active"] is True  # oauth.py still knows it
    response = await oauth.token(
        {
            "grant_type": "refresh_token",
            "refresh_token": old_refresh,
            "client_id": flow.client["client_id"],
        }
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"].startswith("smcp_at_")
    assert response.json()["refresh_token"].startswith("smcp_rt_")


def good() -> str:
    return token_format.mint(token_format.ACCESS_PREFIX)


def wrong_checksum() -> str:
    token = good()
    return token[:-1] + ("1" if token[-1] == "0" else "0")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(good, True, id="minted"),
        pytest.param(lambda: secrets.token_urlsafe(32), False, id="old-format"),
        pytest.param(wrong_checksum, False, id="checksum"),
        pytest.param(lambda: good().upper(), False, id="uppercase"),
        pytest.param(lambda: good()[:-2], False, id="truncated"),
        pytest.param(lambda: good() + "a", False, id="extended"),
        pytest.param(lambda: token_format.mint(token_format.REFRESH_PREFIX), False, id="refresh"),
        pytest.param(lambda: token_format.assemble("smcp_at_", "!" * 43), False, id="bad-body"),
        pytest.param(lambda: "", False, id="empty"),
    ],
)
def test_well_formed(make: Callable[[], str], expected: bool) -> None:
    assert token_format.well_formed(make(), token_format.ACCESS_PREFIX) is expected


@pytest.mark.parametrize(
    ("token", "jwt"),
    [
        ("a.b.c", True),
        ("eyJhbGciOiJFUzI1NiJ9.e30.sig-_", True),
        ("a..c", False),
        (".b.c", False),
        ("a.b.", False),
        ("a.b", False),
        ("a.b.c.d", False),
        ("smcp_at_" + "A" * 43 + "_00000000", False),
    ],
)
def test_jwts_are_told_apart_by_their_shape(token: str, jwt: bool) -> None:
    assert token_format.looks_like_jwt(token) is jwt

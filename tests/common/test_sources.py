"""The per-source key of a peer address."""

from __future__ import annotations

import pytest

from secure_mcp.common.sources import UNKNOWN, scope_source, source_of


@pytest.mark.parametrize(
    ("host", "key"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", id="ipv4"),
        pytest.param("::ffff:10.1.2.3", "10.1.2.3", id="ipv4-mapped"),
        pytest.param("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64", id="ipv6-by-64"),
        pytest.param("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64", id="same-64"),
        pytest.param("fe80::1%eth0", "fe80::/64", id="zone-id"),
        pytest.param("::1", "::/64", id="ipv6-loopback"),
        pytest.param("/run/socket", UNKNOWN, id="unix-socket"),
        pytest.param("", UNKNOWN, id="empty"),
        pytest.param(None, UNKNOWN, id="none"),
    ],
)
def test_source_of(host: str | None, key: str) -> None:
    assert source_of(host) == key


def test_scope_source_is_the_tcp_peer() -> None:
    headers = [(b"x-forwarded-for", b"10.9.8.7")]
    assert scope_source({"client": ("127.0.0.5", 1234), "headers": headers}) == "127.0.0.5"
    assert scope_source({"client": None}) == UNKNOWN
    assert scope_source({}) == UNKNOWN

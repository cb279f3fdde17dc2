"""Canonical resource URIs, loopback hosts and the https rule shared by both servers."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from secure_mcp.common.uris import (
    LOOPBACK_NAMES,
    canonical_resource,
    host_port,
    insecure_http,
    is_loopback_host,
)


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        pytest.param("http://127.0.0.1:8000/mcp", "http://127.0.0.1:8000/mcp", id="unchanged"),
        pytest.param("HTTPS://MCP.Example.COM/mcp", "https://mcp.example.com/mcp", id="case"),
        pytest.param("https://mcp.example.com:443/mcp", "https://mcp.example.com/mcp", id="443"),
        pytest.param("http://mcp.example.com:80/mcp", "http://mcp.example.com/mcp", id="80"),
        pytest.param("http://mcp.example.com:443/mcp", "http://mcp.example.com:443/mcp", id="x"),
        pytest.param("https://mcp.example.com/MCP/", "https://mcp.example.com/MCP/", id="path"),
        pytest.param("http://[::1]:8000/mcp", "http://[::1]:8000/mcp", id="ipv6"),
        pytest.param("http://[::1]:80/mcp", "http://[::1]/mcp", id="ipv6-default-port"),
        pytest.param("https://u:P@Host.example/m", "https://u:P@host.example/m", id="userinfo"),
        pytest.param("https://host.example/m%2F?q=A", "https://host.example/m%2F?q=A", id="rest"),
        pytest.param("urn:example:weather", "urn:example:weather", id="no-host"),
    ],
)
def test_canonical_resource(uri: str, canonical: str) -> None:
    assert canonical_resource(uri) == canonical
    assert canonical_resource(canonical) == canonical  # idempotent


def test_canonical_resource_refuses_a_malformed_port() -> None:
    with pytest.raises(ValueError, match=r"(?i)port"):
        canonical_resource("https://host.example:https/mcp")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("localhost.example", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("url", "insecure"),
    [
        ("http://as.example", True),
        ("HTTP://10.0.0.5:8003/t", True),
        ("https://as.example", False),
        ("http://localhost:8003", False),
        ("http://[::1]:8003", False),
    ],
)
def test_insecure_http(url: str, insecure: bool) -> None:
    assert insecure_http(url) is insecure


def test_loopback_names_are_the_hostnames_urls_give() -> None:
    named = {urlsplit(f"http://{h}:1/").hostname for h in ("LocalHost", "127.0.0.1", "[::1]")}
    assert named == LOOPBACK_NAMES
    assert all(is_loopback_host(name) for name in LOOPBACK_NAMES)
    assert "127.0.0.2" not in LOOPBACK_NAMES  # RFC 8252 7.3 names, not the whole /8


@pytest.mark.parametrize(
    ("host", "header"),
    [("localhost", "localhost:8003"), ("127.0.0.1", "127.0.0.1:80"), ("::1", "[::1]:8000")],
)
def test_host_port_brackets_ipv6(host: str, header: str) -> None:
    assert host_port(host, int(header.rsplit(":", 1)[1])) == header

"""The metadata document fetcher's SSRF guards, each refused with a clear reason (no real DNS)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import httpx2
import pytest

from secure_mcp.oauth.cimd_fetch import Fetcher, FetchError, FetchSeams, is_public, system_resolver
from tests.support.cimd_server import (
    DocumentHost,
    FakeResolver,
    client_tls,
    document,
    loopback_document_server,
    make_certificates,
    server_tls,
)

PUBLIC_IP = "93.184.215.14"
URL = "https://app.example/client.json"


def fetcher(
    host: DocumentHost,
    resolver: FakeResolver | None = None,
    *,
    allow_insecure: bool = False,
    timeout: float = 5.0,
    max_bytes: int = 5 * 1024,
) -> Fetcher:
    """A fetcher whose DNS and network are the given fakes."""
    resolver = resolver or FakeResolver({"app.example": [PUBLIC_IP]})
    seams = FetchSeams(resolver=resolver, transport=host.transport())
    return Fetcher(allow_insecure=allow_insecure, timeout=timeout, max_bytes=max_bytes, seams=seams)


async def test_connects_to_the_checked_address_with_the_real_host_name() -> None:
    host = DocumentHost()
    host.serve("/client.json", document(URL))
    fetched = await fetcher(host).fetch(URL)
    assert fetched.body.startswith(b"{")
    [request] = host.requests
    assert request.url.host == PUBLIC_IP  # pinned: the address that was checked, no second lookup
    assert request.headers["host"] == "app.example"
    assert request.extensions["sni_hostname"] == "app.example"  # TLS verifies the real name
    assert request.headers["accept-encoding"] == "identity"


async def test_port_kept_in_host_header() -> None:
    host = DocumentHost()
    url = "https://app.example:8443/client.json"
    host.serve("/client.json", document(url))
    await fetcher(host).fetch(url)
    [request] = host.requests
    assert (request.url.host, request.url.port) == (PUBLIC_IP, 8443)
    assert request.headers["host"] == "app.example:8443"


NON_PUBLIC = [
    pytest.param("127.0.0.1", id="loopback-v4"),
    pytest.param("127.8.9.10", id="loopback-v4-range"),
    pytest.param("10.1.2.3", id="private-10"),
    pytest.param("172.16.0.1", id="private-172"),
    pytest.param("192.168.1.1", id="private-192"),
    pytest.param("169.254.169.254", id="cloud-metadata-link-local"),
    pytest.param("100.64.0.1", id="cgnat"),
    pytest.param("0.0.0.0", id="unspecified-v4"),  # noqa: S104
    pytest.param("224.0.0.1", id="multicast-v4"),
    pytest.param("240.0.0.1", id="reserved-v4"),
    pytest.param("255.255.255.255", id="broadcast"),
    pytest.param("192.0.2.1", id="documentation-v4"),
    pytest.param("::1", id="loopback-v6"),
    pytest.param("::", id="unspecified-v6"),
    pytest.param("fe80::1", id="link-local-v6"),
    pytest.param("fc00::1", id="unique-local-v6"),
    pytest.param("fec0::1", id="site-local-v6"),
    pytest.param("ff02::1", id="multicast-v6"),
    pytest.param("::ffff:10.0.0.1", id="v4-mapped-private"),
    pytest.param("::ffff:127.0.0.1", id="v4-mapped-loopback"),
    pytest.param("2002:a00:1::1", id="6to4-embedding-private"),
    pytest.param("64:ff9b::a00:1", id="nat64-embedding-private"),
    pytest.param("2001:db8::1", id="documentation-v6"),
    pytest.param("not-an-address", id="garbage"),
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses(address: str) -> None:
    assert is_public(address) is False


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses(address: str) -> None:
    assert is_public(address) is True


@pytest.mark.parametrize("address", NON_PUBLIC[:-1])
async def test_host_resolving_to_non_public_address_is_refused(address: str) -> None:
    host = DocumentHost()
    host.serve("/client.json", document(URL))
    resolver = FakeResolver({"app.example": [address]})
    with pytest.raises(
        FetchError, match=r"not resolve to a public address \(refused to prevent SSRF\)"
    ) as caught:
        await fetcher(host, resolver).fetch(URL)
    assert address not in str(caught.value)  # internal DNS answers are not told to the requester
    assert host.requests == []  # refused before any connection


async def test_one_bad_address_among_public_ones_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = DocumentHost()
    resolver = FakeResolver({"app.example": [PUBLIC_IP, "10.0.0.5"]})
    with pytest.raises(FetchError, match="not resolve to a public address") as caught:
        await fetcher(host, resolver).fetch(URL)
    assert "10.0.0.5" not in str(caught.value)
    assert "app.example resolves to non-public 10.0.0.5" in caplog.text  # the operator sees it
    assert host.requests == []


async def test_ip_literal_host_is_checked_too() -> None:
    host = DocumentHost()
    resolver = FakeResolver({"169.254.169.254": ["169.254.169.254"]})
    with pytest.raises(FetchError, match=r"169\.254\.169\.254"):
        await fetcher(host, resolver).fetch("https://169.254.169.254/latest/meta-data")


async def test_development_flag_allows_loopback_and_http() -> None:
    host = DocumentHost()
    url = "http://localhost:9999/client.json"
    host.serve("/client.json", document(url))
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    fetched = await fetcher(host, resolver, allow_insecure=True).fetch(url)
    assert b"Document client" in fetched.body
    assert host.requests[0].url.host == "127.0.0.1"


async def test_http_refused_without_the_flag() -> None:
    host = DocumentHost()
    with pytest.raises(FetchError, match="must be https"):
        await fetcher(host).fetch("http://app.example/client.json")
    assert host.requests == []


async def test_idna_error_is_unresolvable() -> None:
    async def refuse(host: str, port: int) -> list[str]:
        raise UnicodeError("label too long")

    f = Fetcher(allow_insecure=False, timeout=1, max_bytes=1024, seams=FetchSeams(resolver=refuse))
    with pytest.raises(FetchError, match="does not resolve"):
        await f.fetch(URL)


async def test_unresolvable_host() -> None:
    with pytest.raises(FetchError, match="does not resolve"):
        await fetcher(DocumentHost(), FakeResolver({})).fetch(URL)
    with pytest.raises(FetchError, match="does not resolve"):
        await fetcher(DocumentHost(), FakeResolver({"app.example": []})).fetch(URL)


def _json(body: bytes = b"{}", **headers: str) -> dict[str, object]:
    return {"body": body, "headers": {"content-type": "application/json", **headers}}


BAD_RESPONSES = [
    pytest.param(
        {"body": b"", "status": 302, "headers": {"location": "http://169.254.169.254/"}},
        "redirect (302); not followed",
        id="redirect",
    ),
    pytest.param({"body": b"", "status": 301, "headers": {}}, "redirect (301)", id="moved"),
    pytest.param({"body": b"{}", "status": 404}, "HTTP 404", id="not-found"),
    pytest.param({"body": b"{}", "status": 500}, "HTTP 500", id="server-error"),
    pytest.param(
        {"body": b"<html>", "headers": {"content-type": "text/html"}},
        "not application/json (Content-Type text/html)",
        id="html",
    ),
    pytest.param({"body": b"{}", "headers": {}}, "Content-Type missing", id="no-content-type"),
    pytest.param(
        _json(b"x", **{"content-encoding": "gzip"}), "compressed", id="compressed-gzip-bomb"
    ),
    pytest.param(
        _json(b"{}", **{"content-length": "999999"}), "larger than 5120", id="declared-too-big"
    ),
    pytest.param(
        {**_json(b" " * 6000), "chunks": 6}, "larger than 5120 bytes", id="streamed-too-big"
    ),
]


@pytest.mark.parametrize(("served", "message"), BAD_RESPONSES)
async def test_bad_responses_are_refused(served: dict[str, object], message: str) -> None:
    host = DocumentHost()
    host.serve("/client.json", **served)
    with pytest.raises(FetchError) as caught:
        await fetcher(host).fetch(URL)
    assert message in str(caught.value)


async def test_size_cap_stops_while_streaming() -> None:
    host = DocumentHost()
    host.serve("/client.json", b"x" * 100_000, chunks=100)
    with pytest.raises(FetchError, match="larger than 5120 bytes"):
        await fetcher(host).fetch(URL)
    assert host.streams[0].sent <= 5 * 1024 + 1000  # stopped at the cap, not read to the end


async def test_slow_document_times_out() -> None:
    host = DocumentHost()
    host.serve("/client.json", document(URL), delay=5.0)
    with pytest.raises(FetchError, match=r"longer than 0\.2 s"):
        await fetcher(host, timeout=0.2).fetch(URL)


async def test_slow_dns_counts_towards_the_time_limit() -> None:
    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(5)
        return [PUBLIC_IP]

    f = Fetcher(allow_insecure=False, timeout=0.2, max_bytes=1024, seams=FetchSeams(resolver=slow))
    with pytest.raises(FetchError, match="longer than"):
        await f.fetch(URL)


async def test_transport_error_is_a_fetch_error() -> None:
    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    resolver = FakeResolver({"app.example": [PUBLIC_IP]})
    seams = FetchSeams(resolver=resolver, transport=httpx2.MockTransport(refuse))
    f = Fetcher(allow_insecure=False, timeout=1, max_bytes=1024, seams=seams)
    with pytest.raises(FetchError, match=r"could not be fetched \(ConnectError\)"):
        await f.fetch(URL)


async def test_system_resolver_uses_getaddrinfo(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    calls: list[tuple[str, int]] = []

    async def fake_getaddrinfo(host: str, port: int, **kwargs: object) -> list[object]:
        calls.append((host, port))
        sockaddr = ("93.184.215.14", port)
        v6 = ("2606:4700::1111", port, 0, 0)
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", v6),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", fake_getaddrinfo)
    assert await system_resolver("app.example", 443) == ["93.184.215.14", "2606:4700::1111"]
    assert calls == [("app.example", 443)]


async def test_default_transport_verifies_tls_and_ignores_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # would bypass the pinning if used
    context = ssl.create_default_context()
    f = Fetcher(allow_insecure=False, timeout=1, max_bytes=1024, seams=FetchSeams(verify=context))
    transport = f._transport()
    assert isinstance(transport, httpx2.AsyncHTTPTransport)
    assert f._ssl is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    default = Fetcher(allow_insecure=False, timeout=1, max_bytes=1024, seams=FetchSeams())
    default._transport()
    assert default._ssl is not None
    assert default._ssl.check_hostname is True


async def test_real_tls_through_the_pinned_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real https server on loopback: the certificate is verified for the document's host name
    although the connection goes to the pinned IP, and proxy variables are ignored."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    good = make_certificates(str(tmp_path), "docs.test")
    with loopback_document_server(server_tls(good)) as server:
        port = server.server.server_address[1]
        url = f"https://docs.test:{port}/client.json"
        server.publish("/client.json", document(url))
        resolver = FakeResolver({"docs.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        seams = FetchSeams(resolver=resolver, verify=client_tls(good))
        f = Fetcher(allow_insecure=True, timeout=5, max_bytes=5120, seams=seams)
        fetched = await f.fetch(url)
        assert json.loads(fetched.body)["client_id"] == url
        # the same server under another name: its certificate does not match, so refused
        with pytest.raises(FetchError, match="could not be fetched"):
            await f.fetch(f"https://other.test:{port}/client.json")
        assert server.hits == ["/client.json"]

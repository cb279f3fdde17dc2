"""Fetching client ID metadata documents and clients' jwks_uri with SSRF guards (CIMD draft).

Every guard is here: https only, every resolved address public, the connection pinned to the
address that was checked (TLS still verified against the real host name through SNI), no proxy,
no redirects, one total time limit, a size cap enforced while streaming, JSON only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx2

Resolver = Callable[[str, int], Awaitable[list[str]]]
JSON_TYPE = "application/json"

logger = logging.getLogger(__name__)


class FetchError(Exception):
    """The document could not be fetched safely; the message says why."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (the event loop's getaddrinfo, in a thread)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """True only for a globally routable unicast address (no private, loopback, CGNAT, ...)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:10.0.0.1 reaches 10.0.0.1
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None and not is_public(str(ip.sixtofour)):
            return False  # 2002::/16 embedding a private IPv4 address
    return ip.is_global and not (
        ip.is_multicast  # is_global is True for 224.0.0.0/4 and ff00::/8
        or ip.is_reserved  # also refuses NAT64 64:ff9b::/96 and other ::/8 forms
        or ip.is_loopback
        or ip.is_link_local
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)  # fec0::/10
        or ip.is_private
        or ip.is_unspecified
    )


def verifying_context(ca_file: Path) -> ssl.SSLContext:
    """The default verifying TLS context, also trusting the CAs in `ca_file` (--cimd-ca-file).

    Certificates and host names are still verified; the file only adds trust anchors. A missing
    or malformed file is an OSError naming it, so oauth.py stops at start with one line.
    """
    context = httpx2.create_ssl_context()
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except OSError as exc:  # FileNotFoundError, PermissionError, ssl.SSLError (not PEM)
        raise OSError(f"cannot load the CA file {ca_file} (--cimd-ca-file): {exc}") from None
    return context


@dataclass(frozen=True)
class FetchSeams:
    """What tests replace: name resolution, the HTTP transport, TLS trust and the clock."""

    resolver: Resolver = system_resolver
    transport: httpx2.AsyncBaseTransport | None = None
    verify: ssl.SSLContext | bool = True
    clock: Callable[[], float] = field(default=time.monotonic)


@dataclass(frozen=True)
class Fetched:
    """A fetched document: its raw bytes and response headers."""

    body: bytes
    headers: httpx2.Headers


class Fetcher:
    """GET one metadata document under the SSRF guards above."""

    def __init__(
        self,
        *,
        allow_insecure: bool,
        timeout: float,
        max_bytes: int,
        seams: FetchSeams,
        ca_file: Path | None = None,
        content_types: tuple[str, ...] = (JSON_TYPE,),
    ) -> None:
        self.content_types = content_types  # accepted (and asked for in Accept)
        self.allow_insecure = allow_insecure
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.seams = seams
        # Loaded now, so a bad --cimd-ca-file stops the server at start, not at the first fetch.
        self._ssl: ssl.SSLContext | None = (
            verifying_context(ca_file) if ca_file is not None else None
        )

    async def fetch(self, url: str) -> Fetched:
        """The document at `url`, or FetchError; one time limit covers DNS, connect and body."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(httpx2.URL(url))
        except TimeoutError:
            raise FetchError(f"fetching it took longer than {self.timeout:g} s") from None
        except httpx2.HTTPError as exc:
            raise FetchError(f"it could not be fetched ({type(exc).__name__})") from None

    async def _address(self, host: str, port: int) -> str:
        """The address to connect to: every resolved address must be public (SSRF guard)."""
        try:
            addresses = await self.seams.resolver(host, port)
        except (OSError, UnicodeError):  # gaierror, or an IDNA label the codec refuses
            raise FetchError(f"the host {host} does not resolve") from None
        if not addresses:
            raise FetchError(f"the host {host} does not resolve")
        if not self.allow_insecure:
            refused = [a for a in addresses if not is_public(a)]
            if refused:  # one bad address is enough: DNS answers can be mixed to fool a check
                # The address stays in the log: the error reaches the requester, who must not
                # learn how internal names resolve.
                logger.warning("CIMD host %s resolves to non-public %s", host, refused[0])
                raise FetchError(
                    f"the host {host} does not resolve to a public address (refused to prevent "
                    "SSRF)"
                )
        return addresses[0]

    def _transport(self) -> httpx2.AsyncBaseTransport:
        """The injected transport, or a fresh one that ignores proxy settings."""
        if self.seams.transport is not None:
            return self.seams.transport
        if self._ssl is None:
            verify = self.seams.verify
            self._ssl = (
                verify if isinstance(verify, ssl.SSLContext) else httpx2.create_ssl_context()
            )
        return httpx2.AsyncHTTPTransport(verify=self._ssl, trust_env=False, retries=0)

    async def _fetch(self, url: httpx2.URL) -> Fetched:
        """Resolve, check, connect to the checked address, and read at most max_bytes."""
        if url.scheme != "https" and not (self.allow_insecure and url.scheme == "http"):
            raise FetchError("the URL must be https")
        port = url.port or (443 if url.scheme == "https" else 80)
        address = await self._address(url.host, port)
        pinned = url.copy_with(host=address)  # connect to exactly the address checked above
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Accept": ", ".join(self.content_types),
            "Accept-Encoding": "identity",  # the size cap counts bytes on the wire
        }
        async with (
            httpx2.AsyncClient(
                transport=self._transport(), trust_env=False, follow_redirects=False
            ) as client,
            client.stream(
                "GET",
                pinned,
                headers=headers,
                timeout=self.timeout,
                extensions={"sni_hostname": url.host},  # TLS verifies the real host name
            ) as response,
        ):
            self._check_response(response)
            body = await self._read_capped(response)
        return Fetched(body, response.headers)

    def _check_response(self, response: httpx2.Response) -> None:
        """200, JSON, not compressed, not declared larger than the cap; a redirect is an error."""
        if response.is_redirect:
            raise FetchError(f"it answered with a redirect ({response.status_code}); not followed")
        if response.status_code != 200:
            raise FetchError(f"it answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in self.content_types:
            wanted = " or ".join(self.content_types)
            raise FetchError(f"it is not {wanted} (Content-Type {content_type or 'missing'})")
        if response.headers.get("content-encoding", "identity").lower() != "identity":
            raise FetchError("it is compressed; only identity encoding is accepted")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"it is larger than {self.max_bytes} bytes")

    async def _read_capped(self, response: httpx2.Response) -> bytes:
        """The body, stopping as soon as it passes max_bytes (never buffered whole first)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(f"it is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

"""Client ID metadata document servers for tests: in process (MockTransport), real on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import trustme

LOOPBACK_REDIRECT = "http://127.0.0.1:33333/callback"


def document(url: str, /, **fields: Any) -> dict[str, Any]:
    """A valid public-client metadata document for `url` (fields override, None removes)."""
    doc: dict[str, Any] = {
        "client_id": url,
        "client_name": "Document client",
        "redirect_uris": [LOOPBACK_REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


@dataclass
class Served:
    """What one path answers: a body (JSON-encoded when not bytes), status, headers, delay."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    delay: float = 0.0
    chunks: int = 1  # split the body into this many streamed chunks


class _Chunks(httpx2.AsyncByteStream):
    """A response body streamed in pieces, so a size cap can stop it part way."""

    def __init__(self, parts: list[bytes], delay: float) -> None:
        self.parts = parts
        self.delay = delay
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sent += len(part)
            yield part


@dataclass
class DocumentHost:
    """An in-process document server: an httpx2.MockTransport answering by path.

    `requests` records every request (URL, Host header, sni_hostname) to prove the pinning.
    """

    documents: dict[str, Served] = field(default_factory=dict)
    requests: list[httpx2.Request] = field(default_factory=list)
    streams: list[_Chunks] = field(default_factory=list)

    def serve(self, path: str, body: Any, **options: Any) -> None:
        """Answer GET `path` with `body` (see Served)."""
        self.documents[path] = Served(body, **options)

    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        """The MockTransport handler."""
        self.requests.append(request)
        served = self.documents.get(request.url.path)
        if served is None:
            return httpx2.Response(404, json={"error": "not found"})
        raw = served.body if isinstance(served.body, bytes) else json.dumps(served.body).encode()
        size = max(1, len(raw) // served.chunks)
        parts = [raw[i : i + size] for i in range(0, len(raw), size)] or [b""]
        stream = _Chunks(parts, served.delay)
        self.streams.append(stream)
        return httpx2.Response(served.status, headers=served.headers, stream=stream)

    def transport(self) -> httpx2.MockTransport:
        """The transport to inject into the fetcher (cimd_fetch.FetchSeams.transport)."""
        return httpx2.MockTransport(self._handle)


@dataclass
class FakeResolver:
    """Name resolution from a table; unknown names fail like getaddrinfo. Records lookups."""

    table: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"unknown host {host}")
        return list(self.table[host])


@dataclass
class FakeClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _Handler(BaseHTTPRequestHandler):
    """Serves the server's `documents` (path -> JSON bytes) as application/json."""

    server: _DocumentServer

    def do_GET(self) -> None:
        body = self.server.documents.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=60")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class _DocumentServer(ThreadingHTTPServer):
    documents: dict[str, bytes]
    hits: list[str]


@dataclass
class LoopbackDocumentServer:
    """A real HTTP document server on 127.0.0.1 (for oauth.py with the development flag)."""

    base_url: str
    server: _DocumentServer

    def url(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return self.base_url + path

    def publish(self, path: str, doc: dict[str, Any]) -> str:
        """Serve `doc` at `path`; return its URL."""
        self.server.documents[path] = json.dumps(doc).encode()
        return self.url(path)

    @property
    def hits(self) -> list[str]:
        """Paths fetched so far."""
        return self.server.hits


@contextlib.contextmanager
def loopback_document_server(
    tls: ssl.SSLContext | None = None,
) -> Iterator[LoopbackDocumentServer]:
    """Run a document server on 127.0.0.1 (ephemeral port, https with `tls`) until block end."""
    server = _DocumentServer(("127.0.0.1", 0), _Handler)
    server.documents = {}
    server.hits = []
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if tls is not None else "http"
    try:
        yield LoopbackDocumentServer(f"{scheme}://127.0.0.1:{server.server_address[1]}", server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass(frozen=True)
class TestCertificates:
    """A throwaway CA and a server certificate it signed, as PEM files."""

    ca_file: str
    cert_file: str
    key_file: str


def make_certificates(
    directory: str, server_name: str, ip_addresses: tuple[str, ...] = ()
) -> TestCertificates:
    """A test CA and a certificate for `server_name` (and `ip_addresses`; never leaves tmp).

    trustme makes both; they are written as PEM files because oauth.py reads its CA from a file.
    """
    ca = trustme.CA()
    issued = ca.issue_cert(server_name, *ip_addresses)
    files = TestCertificates(
        f"{directory}/ca.pem", f"{directory}/{server_name}.pem", f"{directory}/{server_name}.key"
    )
    ca.cert_pem.write_to_path(files.ca_file)
    with open(files.cert_file, "wb") as out:
        for pem in issued.cert_chain_pems:
            out.write(pem.bytes())
    issued.private_key_pem.write_to_path(files.key_file)
    return files


def server_tls(certs: TestCertificates) -> ssl.SSLContext:
    """A server-side TLS context presenting `certs`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    return context


def client_tls(certs: TestCertificates) -> ssl.SSLContext:
    """A verifying client TLS context that trusts only the test CA."""
    return ssl.create_default_context(cafile=certs.ca_file)

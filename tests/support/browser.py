"""Chromium through Playwright for the browser tests (a fixture every folder may use)."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import threading
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from playwright.async_api import Browser, async_playwright

from tests.support.tools import chromium_path

# The flags the machine's probe uses: without the background-networking ones, chromium's own
# connections are refused by the closed network, many at a time.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's chromium through Playwright (skipped without it, a failure under CI)."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.contextmanager
def recording_server(
    record: Callable[[str, http.client.HTTPMessage], None], body: bytes
) -> Iterator[int]:
    """An HTTP server on 127.0.0.1 answering each GET with the HTML `body`; its port.

    `record` is told each request's path and headers.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            record(self.path, self.headers)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def loopback_listener() -> Iterator[tuple[str, list[str]]]:
    """A tiny HTTP server on 127.0.0.1 recording the paths it is asked for (the client's side)."""
    seen: list[str] = []
    body = b"<!doctype html><title>done</title><p>You can close this window.</p>"
    with recording_server(lambda path, headers: seen.append(path), body) as port:
        yield f"http://127.0.0.1:{port}/callback", seen

"""A malicious MCP server: the real streamable-HTTP wire format, with every answer scriptable.

In process it is an httpx2 transport (so a body can be produced lazily: 300 MB without holding
it, or a byte every 50 ms); `serve_hostile` puts the same server on a loopback port for the
tests that run client.py as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from tests.support.client_fakes import FakeAuthServer

ESC = "\x1b"
# What a hostile server (or model) writes to take over a terminal, each with its name.
TERMINAL_ATTACKS = {
    "osc52_clipboard": f"{ESC}]52;c;ZWNobyBvd25lZA=={ESC}\\",
    "osc52_bel": f"{ESC}]52;c;ZWNobyBvd25lZA==\x07",
    "title": f"{ESC}]0;PWNED-TITLE\x07",
    "title_st": f"{ESC}]2;PWNED-TITLE{ESC}\\",
    "clear_screen": f"{ESC}[2J{ESC}[H",
    "cursor_up_erase": f"{ESC}[1A{ESC}[2K\r",
    "hyperlink": f"{ESC}]8;;https://evil.example/{ESC}\\click{ESC}]8;;{ESC}\\",
    "dcs": f"{ESC}P+q544e{ESC}\\",
    "bare_esc": f"{ESC}c",
    "csi_8bit": "\x9b2J\x9b1A",
    "osc_8bit": "\x9d0;PWNED\x9c",
    "carriage_return": "\rfake line",
    "backspaces": "abc\b\b\b",
    "bidi_override": "\u202egnp.exe",
    "bidi_isolate": "\u2067evil\u2069",
    "tag_characters": "\U000e0041\U000e0042",
    "bell": "\x07",
    "nul": "\x00",
    "line_separator": "a\u2028b",
}
# Not in JSON from the wire (pydantic refuses the document: one error line), but in our own text.
LONE_SURROGATE = "\ud800"
ALL_ATTACKS = "".join(TERMINAL_ATTACKS.values())

CACHE = {"cacheScope": "private", "ttlMs": 0}
DISCOVER = {
    "cacheScope": "private",
    "capabilities": {"tools": {"listChanged": True}},
    "resultType": "complete",
    "supportedVersions": ["2026-07-28"],
    "ttlMs": 0,
    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "hostile", "version": "1"}},
}


def tool(name: str, description: str = "A tool.", schema: dict[str, Any] | None = None) -> dict:
    """A tool as the server lists it."""
    return {
        "name": name,
        "description": description,
        "inputSchema": schema or {"type": "object", "properties": {"state": {"type": "string"}}},
    }


def text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    """A tools/call result with one text block."""
    return {
        "content": [{"type": "text", "text": text}],
        "isError": is_error,
        "resultType": "complete",
    }


@dataclass
class Answer:
    """One HTTP answer: a status, headers, and a body given whole or as chunks."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    body: bytes | Callable[[], AsyncIterator[bytes]] = b""


def rpc(message_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> Answer:
    """A JSON-RPC answer."""
    payload: dict[str, Any] = {"jsonrpc": "2.0", "id": message_id}
    payload["error" if error is not None else "result"] = error if error is not None else result
    return Answer(body=json.dumps(payload).encode())


def huge_result(message_id: Any, size: int, chunk: int = 64 * 1024) -> Answer:
    """A tools/call answer whose text is `size` bytes, made while it is sent (never held)."""
    head = json.dumps({"jsonrpc": "2.0", "id": message_id})[:-1].encode()
    start = head + b', "result": {"content": [{"type": "text", "text": "'
    end = b'"}], "isError": false, "resultType": "complete"}}'
    block = b"A" * chunk

    async def body() -> AsyncIterator[bytes]:
        yield start
        for _ in range(size // chunk):
            yield block
        yield end

    return Answer(body=body)


def trickled(message_id: Any, text: str, every: float) -> Answer:
    """A tools/call answer sent one byte at a time, `every` seconds apart."""
    whole = json.dumps({"jsonrpc": "2.0", "id": message_id, "result": text_result(text)}).encode()

    async def body() -> AsyncIterator[bytes]:
        for index in range(len(whole)):
            await asyncio.sleep(every)
            yield whole[index : index + 1]

    return Answer(body=body)


Handler = Callable[[Any, dict[str, Any]], Answer]


@dataclass
class HostileAuthServer(FakeAuthServer):
    """The fake authorization server, with hostile text where a real one puts its own."""

    client_id_text: str = ""  # appended to every client_id it registers
    token_error: dict[str, Any] | None = None  # /token answers 400 with this body
    error_description: str | None = None  # sent with `refuse`

    async def _register(self, request: Request) -> Response:
        response = await super()._register(request)
        record = json.loads(bytes(response.body))
        self.registrations.pop(record["client_id"])
        record["client_id"] += self.client_id_text
        self.registrations[record["client_id"]] = record
        return JSONResponse(record, status_code=201)

    async def _token(self, request: Request) -> Response:
        if self.token_error is not None:
            return JSONResponse(self.token_error, status_code=400)
        return await super()._token(request)

    async def _authorize(self, request: Request) -> Response:
        response = await super()._authorize(request)
        if self.error_description is None:
            return response
        location = response.headers["location"]
        extra = httpx2.QueryParams({"error_description": self.error_description})
        return RedirectResponse(f"{location}&{extra}", status_code=302)


class HostileMcp(httpx2.AsyncBaseTransport):
    """An MCP endpoint whose answers the test scripts; it never needs a sign-in (unless `auth`)."""

    def __init__(self, *, auth: FakeAuthServer | None = None) -> None:
        self.tools: list[dict[str, Any]] = [tool("get_alerts", "Alerts for a US state.")]
        self.handlers: dict[str, Handler] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pages_served = 0
        self.auth = auth
        self.page_size: int | None = None  # paginate the tool list (cursor = next offset)
        self.endless = False  # every page has a next cursor, forever
        self.every_request: Answer | None = None  # answer everything with this
        self.accept_tokens: int | None = None  # with `auth`: refuse every token after this many
        self.authorized = 0
        self.prm_padding = 0  # stream the RFC 9728 document with this many extra bytes

    def answer(self, method: str, message_id: Any, params: dict[str, Any]) -> Answer:
        """The scripted answer to one JSON-RPC request."""
        if method == "tools/call":
            self.calls.append((params["name"], params.get("arguments", {})))
        if method in self.handlers:
            return self.handlers[method](message_id, params)
        if method == "server/discover":
            return rpc(message_id, DISCOVER)
        if method == "ping":
            return rpc(message_id, {})
        if method == "tools/list":
            return self._tools_page(message_id, params)
        if method == "tools/call":
            return rpc(message_id, text_result(f"called {params['name']}"))
        return rpc(message_id, error={"code": -32601, "message": "Method not found"})

    def _tools_page(self, message_id: Any, params: dict[str, Any]) -> Answer:
        self.pages_served += 1
        if self.pages_served > 1000:  # a client without a page bound would loop for ever
            return rpc(message_id, error={"code": -32603, "message": "1000 pages served"})
        start = int(params.get("cursor") or 0)
        size = self.page_size or len(self.tools)
        page = self.tools[start : start + size] if not self.endless else self.tools
        result: dict[str, Any] = {"tools": page, "resultType": "complete", **CACHE}
        more = self.endless or start + size < len(self.tools)
        if more:
            result["nextCursor"] = str(start + size)
        return rpc(message_id, result)

    def answer_http(self, method: str, headers: httpx2.Headers, content: bytes) -> Answer:
        """The HTTP answer to one request on the MCP endpoint."""
        if self.every_request is not None:
            return self.every_request
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if self.auth is not None:
            spent = self.accept_tokens is not None and self.authorized >= self.accept_tokens
            if spent or self.auth.grant_for(token) is None:
                return Answer(401, {"www-authenticate": 'Bearer scope="weather:read"'})
            self.authorized += 1
        if method != "POST":
            return Answer(405)
        message = json.loads(content)
        if "id" not in message:  # a notification
            return Answer(202)
        return self.answer(message["method"], message["id"], message.get("params") or {})

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """httpx2 transport: the answer, its body produced as it is read."""
        if request.url.path != "/mcp":
            return self._metadata(request)
        answer = self.answer_http(request.method, request.headers, await request.aread())
        if isinstance(answer.body, bytes):
            return httpx2.Response(answer.status, headers=answer.headers, content=answer.body)
        return httpx2.Response(answer.status, headers=answer.headers, stream=_Stream(answer.body))

    def _metadata(self, request: httpx2.Request) -> httpx2.Response:
        """RFC 9728 metadata naming the fake authorization server (when signing in is on)."""
        if self.auth is None or request.url.path != "/.well-known/oauth-protected-resource/mcp":
            return httpx2.Response(404, json={"error": "not_found"})
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        prm = {"resource": f"{origin}/mcp", "authorization_servers": [self.auth.issuer]}
        if not self.prm_padding:
            return httpx2.Response(200, json=prm)
        prm["padding"] = "p" * self.prm_padding
        whole = json.dumps(prm).encode()

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(whole), 4096):
                yield whole[start : start + 4096]

        return httpx2.Response(
            200, headers={"content-type": "application/json"}, stream=_Stream(chunks)
        )

    async def asgi(self, request: Request) -> Response:
        """The same server as a Starlette endpoint, for `serve_hostile`."""
        answer = self.answer_http(
            request.method, httpx2.Headers(request.headers.raw), await request.body()
        )
        if isinstance(answer.body, bytes):
            return Response(answer.body, answer.status, answer.headers)
        return StreamingResponse(answer.body(), answer.status, answer.headers)


class _Stream(httpx2.AsyncByteStream):
    def __init__(self, make: Callable[[], AsyncIterator[bytes]]) -> None:
        self._chunks = make()
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


@contextlib.contextmanager
def serve_hostile(server: HostileMcp) -> Iterator[str]:
    """Serve `server` with uvicorn on 127.0.0.1 (ephemeral port); yield its MCP URL."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    app = Starlette(routes=[Route("/mcp", server.asgi, methods=["GET", "POST", "DELETE"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, name="hostile-mcp", daemon=True)
    thread.start()
    try:
        while not runner.started:
            if not thread.is_alive():
                raise RuntimeError("the hostile MCP server did not start")
            threading.Event().wait(0.02)
        port = runner.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        runner.should_exit = True
        runner.force_exit = True
        thread.join(timeout=10)

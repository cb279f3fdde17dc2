"""A local stand-in for the Anthropic Messages API: the real wire format, scripted per test.

Queue replies (`say`, `use_tools`, `api_error`, `raw_sse`), point an `AsyncAnthropic` at it
(in process with `standin.client()`, or on a real loopback port with `serve_standin`), then
assert on `standin.requests`: every request body the client sent, in order.
Bodies follow tests/fixtures/anthropic/: a real SSE stream and real JSON exchanges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
import uvicorn
from anthropic import AsyncAnthropic
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API_KEY = "sk-ant-standin-key"
_ids = itertools.count(1)


@dataclass
class Reply:
    """One scripted answer: a message (streamed or JSON), an error, raw SSE text, or a stall."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw_sse: str | None = None
    stall: asyncio.Event | None = None  # set when the request arrives; then never answered


Scripted = Reply | Callable[["RecordedRequest"], Reply]
"""A reply, or a function of the request making one (e.g. to quote a tool result back)."""


@dataclass
class RecordedRequest:
    """A request the stand-in received."""

    headers: dict[str, str]
    body: dict[str, Any]

    def tool_results(self) -> list[dict[str, Any]]:
        """The `tool_result` blocks of the last message (what the client answered tools with)."""
        content = self.body["messages"][-1]["content"]
        return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def say(text: str) -> Reply:
    """Claude answers with text and ends its turn."""
    return Reply(content=[{"type": "text", "text": text}], stop_reason="end_turn")


def tool_use(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A `tool_use` block as the API sends it."""
    return {
        "type": "tool_use",
        "id": f"toolu_standin{next(_ids):04d}",
        "name": name,
        "input": arguments,
        "caller": {"type": "direct"},
    }


def use_tools(*calls: tuple[str, dict[str, Any]], text: str = "") -> Reply:
    """Claude asks for one or more tool calls (in this order), optionally after some text."""
    content = [{"type": "text", "text": text}] if text else []
    content += [tool_use(name, arguments) for name, arguments in calls]
    return Reply(content=content, stop_reason="tool_use")


def api_error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """An API error response, shaped like the real 429 in the reference cassette."""
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": f"req_standin{next(_ids):04d}",
    }
    return Reply(status=status, error=body, headers=headers or {})


def raw_sse(text: str) -> Reply:
    """A verbatim SSE body (e.g. the recorded real stream)."""
    return Reply(raw_sse=text)


def message_json(reply: Reply, model: str) -> dict[str, Any]:
    """The complete Message object for a reply (the non-streaming response body)."""
    return {
        "id": f"msg_standin{next(_ids):04d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 42,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 7,
            "service_tier": "standard",
        },
    }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _block_events(index: int, block: dict[str, Any]) -> Iterator[str]:
    """content_block_start, deltas and stop for one block, as the real stream sends them."""
    start: dict[str, Any]
    if block["type"] == "text":
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 12)]
    else:
        start = {**block, "input": {}}
        partial = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": ""}]
        deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(partial, 7)]
    yield _event(
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": start},
    )
    for delta in deltas:
        yield _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )
    yield _event("content_block_stop", {"type": "content_block_stop", "index": index})


def sse_events(reply: Reply, model: str) -> Iterator[str]:
    """The SSE stream for a reply: message_start ... message_stop, with a ping like the real one."""
    message = message_json(reply, model)
    usage = message["usage"]
    yield _event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                **message,
                "content": [],
                "stop_reason": None,
                "usage": {**usage, "output_tokens": 1},
            },
        },
    )
    yield _event("ping", {"type": "ping"})
    for index, block in enumerate(reply.content):
        yield from _block_events(index, block)
    yield _event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield _event("message_stop", {"type": "message_stop"})


class AnthropicStandIn:
    """The scripted Messages API: a Starlette app with a queue of replies and a request log."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.replies: deque[Scripted] = deque()
        self.requests: list[RecordedRequest] = []
        # Chunked SSE only over a real socket: in process, Starlette's streaming task group
        # unbalances coverage's tracer on Python 3.11 (ASGITransport buffers the body anyway).
        self.chunked = False
        self.base_url = ""  # set while `serve_standin` serves it on a loopback port
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    def queue(self, *replies: Scripted) -> None:
        """Add replies, answered in order, one per request."""
        self.replies.extend(replies)

    def client(self, *, api_key: str | None = None, max_retries: int = 0) -> AsyncAnthropic:
        """An `AsyncAnthropic` talking to this app in process (no socket)."""
        transport = httpx2.ASGITransport(app=self.app)
        return AsyncAnthropic(
            api_key=api_key or self.api_key,
            base_url="http://anthropic.standin",
            http_client=httpx2.AsyncClient(transport=transport),
            max_retries=max_retries,
        )

    def _authorized(self, request: Request) -> bool:
        """The key arrives as `Authorization: Bearer` (SDK 2.x) or `x-api-key` (older SDKs)."""
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        given = request.headers.get("x-api-key") or bearer
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    async def _messages(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(RecordedRequest(dict(request.headers), body))
        if not self._authorized(request):
            reply = api_error(401, "authentication_error", "invalid x-api-key")
        elif self.replies:
            scripted = self.replies.popleft()
            reply = scripted if isinstance(scripted, Reply) else scripted(self.requests[-1])
        else:
            reply = api_error(500, "api_error", "the stand-in has no scripted reply left")
        if reply.stall is not None:
            reply.stall.set()
            await asyncio.Event().wait()
        if reply.error is not None:
            return JSONResponse(reply.error, status_code=reply.status, headers=reply.headers)
        if reply.raw_sse is not None:
            return Response(reply.raw_sse, media_type="text/event-stream")
        if body.get("stream"):
            events = sse_events(reply, body["model"])
            if self.chunked:
                return StreamingResponse(_aiter(events), media_type="text/event-stream")
            return Response("".join(events), media_type="text/event-stream")
        return JSONResponse(message_json(reply, body["model"]))


async def _aiter(items: Iterator[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


@contextlib.contextmanager
def serve_standin(standin: AnthropicStandIn) -> Iterator[str]:
    """Serve the stand-in with uvicorn on 127.0.0.1 (ephemeral port); yield its base URL."""
    standin.chunked = True
    config = uvicorn.Config(
        standin.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="anthropic-standin", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the Anthropic stand-in did not start")
            threading.Event().wait(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        standin.base_url = f"http://127.0.0.1:{port}"
        yield standin.base_url
    finally:
        standin.base_url = ""
        server.should_exit = True
        server.force_exit = True  # do not wait for stalled requests to finish
        thread.join(timeout=10)


def standin_env(standin: AnthropicStandIn) -> dict[str, str]:
    """The ANTHROPIC_* variables pointing a client.py process at the served stand-in."""
    assert standin.base_url, "serve the stand-in first (serve_standin)"
    return {
        "ANTHROPIC_API_KEY": standin.api_key,
        "ANTHROPIC_BASE_URL": standin.base_url,
        "ANTHROPIC_MODEL": "claude-sonnet-5-5",
    }


@pytest.fixture(scope="module")
def claude() -> Iterator[AnthropicStandIn]:
    """The Claude stand-in on a loopback port, one per test module (for client.py processes)."""
    standin = AnthropicStandIn()
    with serve_standin(standin):
        yield standin

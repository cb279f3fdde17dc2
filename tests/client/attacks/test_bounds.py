"""Bounded work: what a hostile server can make the client do, hold, or wait for.

Memory is measured with tracemalloc around the whole client run (client.py in this process):
a 300 MB tool result and a tool list that never ends. The figures are printed (`-s`) and
bounded by the assertions.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.anthropic_standin import say, use_tools
from tests.support.client_fakes import FakeAuthServer
from tests.support.hostile import (
    HostileMcp,
    huge_result,
    rpc,
    text_result,
    tool,
    trickled,
)
from tests.support.hostile_world import World

MB = 1024 * 1024


def _measured(run: Callable[[], int]) -> tuple[int, float]:
    """The exit status of `run` and the peak memory it allocated, in MiB."""
    tracemalloc.start()
    try:
        code = run()
        peak = tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()
    return code, peak


def _signing_in(tmp_path: Path, **limits: Any) -> World:
    fake_as = FakeAuthServer()
    world = World(tmp_path / "state", fake_as=fake_as, limits=limits)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports["http://127.0.0.1:8000"] = world.mcp  # type: ignore[assignment]
    return world


def test_a_server_rejecting_every_token_gets_three_sign_ins_then_the_client_stops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    world.mcp.accept_tokens = 3  # start-up works (ping, discover, list), then no token does
    calls = ('/call get_alerts {"state": "CA"}',) * 8
    assert world.run(lines=calls) == 1
    assert len(world.browser.opened) == 3
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        "Error: Stopped: this session already signed in 3 times and the server still asks"
    )
    assert "Traceback" not in err


def test_claude_cannot_reopen_the_browser_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    world.mcp.accept_tokens = 3
    world.claude.queue(*[use_tools(("get_alerts", {"state": "CA"}))] * 10, say("never"))
    assert world.run("--query", "alerts?") == 1
    assert len(world.browser.opened) == 3
    assert "Error: Stopped: this session already signed in 3 times" in capsys.readouterr().err


def test_login_starts_the_count_again(tmp_path: Path) -> None:
    world = _signing_in(tmp_path)
    assert world.run(lines=("/login", "/login", "/login")) == 0
    assert len(world.browser.opened) == 4  # the first sign-in, then three the user asked for


def test_a_300_mb_result_is_not_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = World(tmp_path / "state")
    world.mcp.handlers["tools/call"] = lambda i, params: huge_result(i, 300 * MB)
    world.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("too big"))
    code, peak = _measured(lambda: world.run("--query", "alerts?"))
    with capsys.disabled():
        print(f"\n300 MB tool result: peak {peak:.1f} MiB traced")
    assert code == 0
    assert peak < 64
    result = world.claude.requests[1].tool_results()[0]
    assert result["is_error"] is True  # Claude is told
    assert "larger than the client's limit of 16 MiB" in result["content"][0]["text"]
    out = capsys.readouterr().out
    assert "↳ error: The answer from http://127.0.0.1:8000/mcp is larger than" in out


def test_a_big_result_is_cut_for_claude_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    big = "B" * 150_000
    world.mcp.handlers["tools/call"] = lambda i, params: rpc(i, text_result(big))
    world.claude.queue(use_tools(("get_alerts", {"state": "CA"})), say("ok"))
    assert world.run("--query", "alerts?") == 0
    content = world.claude.requests[1].tool_results()[0]["content"]
    assert content[0]["text"] == "B" * 100_000
    note = (
        "[truncated by the client: the result has 150,000 characters; the first 100,000 are kept]"
    )
    assert content[1]["text"] == note
    assert f"Note: get_alerts: {note}" in capsys.readouterr().err


def test_an_endless_tool_list_is_read_to_its_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.mcp.endless = True
    world.mcp.tools = [tool(f"tool_{n}") for n in range(5)]
    code, peak = _measured(lambda: world.run(lines=("/tools",)))
    with capsys.disabled():
        print(f"\nendless tool list: {world.mcp.pages_served} pages, peak {peak:.1f} MiB traced")
    assert code == 0
    assert world.mcp.pages_served == 2 * 20  # the start-up listing and /tools, 20 pages each
    assert peak < 32
    err = capsys.readouterr().err
    assert "the server's tool list did not end after 20 pages" in err


def test_a_huge_tool_list_page_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.mcp.tools = [tool(f"tool_{n}", "d" * 2000) for n in range(10_000)]  # about 20 MB
    code, peak = _measured(lambda: world.run(lines=("/tools",)))
    with capsys.disabled():
        print(f"\n20 MB tool list page: peak {peak:.1f} MiB traced")
    assert code == 1
    assert peak < 160  # the page is made by the test's own server in this process
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("Error: ")
    assert "larger than the client's limit of 16 MiB" in err


def test_many_tools_long_descriptions_and_big_schemas_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.mcp.page_size = 40
    world.mcp.tools = [
        tool("huge_schema", schema={"type": "object", "description": "s" * 20_000}),
        tool("long_description", "L" * 20_000),
        *(tool(f"tool_{n}") for n in range(300)),
    ]
    world.claude.queue(say("ok"))
    assert world.run("--query", "hi") == 0
    sent = world.claude.requests[0].body["tools"]
    assert len(sent) == 199  # the first 200, less the one with a schema over 16 KiB
    assert [t["name"] for t in sent[:2]] == ["long_description", "tool_0"]
    assert sent[0]["description"].endswith("[description cut by the client at 8,192 characters]")
    assert len(sent[0]["description"]) < 8_300
    err = capsys.readouterr().err
    assert "Note: the server offers more than 200 tools; only the first 200 are used." in err
    assert "Note: left out tool huge_schema: its input schema is too large." in err
    assert world.mcp.pages_served == 6  # enough pages for 200 tools, no more


def test_a_repeating_cursor_ends_the_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")

    def same_cursor(message_id: Any, params: dict[str, Any]) -> Any:
        world.mcp.pages_served += 1
        if world.mcp.pages_served > 100:  # a client without the check would loop for ever
            return rpc(message_id, error={"code": -32603, "message": "100 pages served"})
        result = {"tools": [tool("a")], "nextCursor": "again", "resultType": "complete"}
        return rpc(message_id, {**result, "cacheScope": "private", "ttlMs": 0})

    world.mcp.handlers["tools/list"] = same_cursor
    assert world.run(env={}) == 0
    assert world.mcp.pages_served == 2  # the first page, then "again" a second time: stop
    assert "tool list repeats itself" in capsys.readouterr().err


def test_a_trickling_result_cannot_extend_the_deadline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state", limits={"mcp_deadline": 1.0})
    world.mcp.handlers["tools/call"] = lambda i, params: trickled(i, "t" * 400, every=0.02)
    started = time.monotonic()
    assert world.run("--call", "get_alerts", "{}") == 1  # an error result
    elapsed = time.monotonic() - started
    assert elapsed < 4  # the whole answer would take 10 s, one byte every 20 ms
    out = capsys.readouterr().out
    assert "No complete answer from http://127.0.0.1:8000/mcp within 1 seconds" in out


def test_a_trickling_authorization_server_cannot_either(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path, oauth_deadline=0.5)
    world.mcp.prm_padding = 200_000
    slow = world.mcp._metadata

    def trickle(request: Any) -> Any:
        response = slow(request)
        chunks = response.stream

        class Slow:
            async def __aiter__(self) -> Any:
                async for chunk in chunks:
                    await __import__("asyncio").sleep(0.05)
                    yield chunk

            async def aclose(self) -> None:
                await chunks.aclose()

        response.stream = Slow()
        return response

    world.mcp._metadata = trickle  # type: ignore[method-assign]
    started = time.monotonic()
    assert world.run("--call", "get_alerts", "{}") == 1
    assert time.monotonic() - started < 4
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("Error: No complete answer from http://127.0.0.1:8000/.well-known/")


def test_oversized_metadata_is_refused_before_it_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    world.mcp.prm_padding = 300_000  # streamed: no Content-Length to refuse it by
    assert world.run("--call", "get_alerts", "{}") == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("Error: The answer from http://127.0.0.1:8000/.well-known/")
    assert "larger than the client's limit of 256 KiB" in err
    assert world.browser.opened == []


def test_declared_oversized_metadata_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    metadata = world.fake_as.metadata

    def padded() -> dict[str, Any]:
        return {**metadata(), "padding": "p" * 300_000}

    world.fake_as.metadata = padded  # type: ignore[method-assign]
    assert world.run("--call", "get_alerts", "{}") == 1
    err = capsys.readouterr().err.splitlines()[-1]
    assert "http://127.0.0.1:9000/.well-known/oauth-authorization-server" in err
    assert "larger than the client's limit of 256 KiB" in err

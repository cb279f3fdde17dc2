"""The agent loop against the Messages API stand-in: rounds, order, errors, history, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import ThinkingBlock

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.claude import (
    ROUND_LIMIT_NOTE,
    SYSTEM_PROMPT,
    ClaudeChat,
    ClaudeError,
    _assistant_block,
    describe_api_error,
)
from secure_mcp.client.settings import ClientSettings
from tests.support.anthropic_standin import (
    AnthropicStandIn,
    Reply,
    api_error,
    raw_sse,
    say,
    serve_standin,
    use_tools,
)
from tests.support.chat_session import WEATHER_TOOLS, FakeSession, Transcript, text_result
from tests.support.processes import free_port

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "anthropic"
CA = ("get_alerts", {"state": "CA"})
SF = ("get_forecast", {"latitude": 37.7749, "longitude": -122.4194})


@pytest.fixture
def standin() -> AnthropicStandIn:
    return AnthropicStandIn()


@pytest.fixture
def settings(tmp_path: Path) -> ClientSettings:
    return ClientSettings(state_dir=tmp_path, anthropic_api_key="unused", anthropic_model="m-test")


def make_chat(
    client: AsyncAnthropic, session: FakeSession, settings: ClientSettings, out: Transcript
) -> ClaudeChat:
    return ClaudeChat(client, session, settings, out.write)


def reference_429() -> Reply:
    """The recorded real 429 (its body and headers), made instantly retryable."""
    entry = json.loads((REFERENCE / "error_429_rate_limit.cassette_entry.json").read_text())
    response = entry["response"]
    reply = api_error(429, "rate_limit_error", "")
    reply.error = response["body"]
    reply.headers = {"x-should-retry": response["headers"]["x-should-retry"], "retry-after-ms": "1"}
    return reply


async def test_multi_round_tool_use_then_answer(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    standin.queue(
        use_tools(SF, text="Checking the forecast."), use_tools(CA), say("Sunny, no alerts.")
    )
    session, out = FakeSession(), Transcript()
    await make_chat(standin.client(), session, settings, out).ask("weather in SF?")
    assert session.calls == [SF, CA]
    assert len(standin.requests) == 3
    first_use = standin.requests[1].body["messages"][1]["content"][1]
    assert standin.requests[1].tool_results() == [
        {
            "type": "tool_result",
            "tool_use_id": first_use["id"],
            "content": [{"type": "text", "text": f"get_forecast result for {SF[1]}"}],
            "is_error": False,
        }
    ]
    assert standin.requests[2].tool_results()[0]["content"][0]["text"].startswith("get_alerts")
    assert out.text == (
        "Checking the forecast.\n"
        '  ⚙ get_forecast {"latitude": 37.7749, "longitude": -122.4194}\n'
        "  ↳ get_forecast result for {'latitude': 37.7749, 'longitude': -122.4194}\n"
        '  ⚙ get_alerts {"state": "CA"}\n'
        "  ↳ get_alerts result for {'state': 'CA'}\n"
        "Sunny, no alerts.\n"
    )


async def test_request_carries_model_system_tools_and_streams(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    standin.queue(say("hi"))
    await make_chat(standin.client(), FakeSession(), settings, Transcript()).ask("hello")
    body = standin.requests[0].body
    assert body["model"] == "m-test"
    assert body["stream"] is True
    assert body["system"] == SYSTEM_PROMPT
    assert body["tool_choice"] == {"type": "auto"}
    assert [t["name"] for t in body["tools"]] == ["get_alerts", "get_forecast"]
    assert body["tools"][0]["input_schema"] == WEATHER_TOOLS[0].input_schema
    assert body["messages"] == [{"role": "user", "content": "hello"}]


async def test_parallel_tool_uses_answered_in_order_in_one_message(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [CA, SF, ("get_alerts", {"state": "TX"})]
    standin.queue(use_tools(*calls), say("All three done."))
    session = FakeSession()
    await make_chat(standin.client(), session, settings, Transcript()).ask("three things")
    assert session.calls == calls
    asked = [b["id"] for b in standin.requests[1].body["messages"][1]["content"]]
    last = standin.requests[1].body["messages"][-1]
    assert last["role"] == "user"
    assert [r["tool_use_id"] for r in standin.requests[1].tool_results()] == asked
    assert len(last["content"]) == 3


async def test_tool_errors_go_back_as_is_error_results(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    session = FakeSession(
        outcomes={
            "get_alerts": text_result("Unknown state 'ZZ'", is_error=True),
            "get_forecast": RuntimeError("connection dropped"),
        }
    )
    standin.queue(use_tools(("get_alerts", {"state": "ZZ"}), SF), say("Both failed, sorry."))
    out = Transcript()
    await make_chat(standin.client(), session, settings, out).ask("try")
    results = standin.requests[1].tool_results()
    assert [r["is_error"] for r in results] == [True, True]
    assert results[0]["content"] == [{"type": "text", "text": "Unknown state 'ZZ'"}]
    failure = "tool call failed: RuntimeError: connection dropped"
    assert results[1]["content"] == [{"type": "text", "text": failure}]
    assert "  ↳ error: Unknown state 'ZZ'\n" in out.text
    assert f"  ↳ error: {failure}\n" in out.text
    assert out.text.endswith("Both failed, sorry.\n")


async def test_history_is_kept_across_questions_and_cleared(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    standin.queue(use_tools(CA), say("No alerts."), say("Still none."), say("Fresh start."))
    chat = make_chat(standin.client(), FakeSession(), settings, Transcript())
    await chat.ask("alerts in CA")
    await chat.ask("and now?")
    second = standin.requests[2].body["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user", "assistant", "user"]
    assert second[0]["content"] == "alerts in CA"
    assert second[3]["content"] == [{"type": "text", "text": "No alerts."}]
    chat.clear()
    await chat.ask("hello")
    assert standin.requests[3].body["messages"] == [{"role": "user", "content": "hello"}]


async def test_tool_rounds_are_bounded(standin: AnthropicStandIn, tmp_path: Path) -> None:
    settings = ClientSettings(state_dir=tmp_path, anthropic_api_key="k", max_tool_rounds=2)
    standin.queue(use_tools(CA), use_tools(CA), use_tools(CA), say("ok"))
    session, out = FakeSession(), Transcript()
    chat = make_chat(standin.client(), session, settings, out)
    await chat.ask("loop forever")
    assert len(session.calls) == 2
    assert standin.requests[2].body["tool_choice"] == {"type": "none"}
    assert out.text.endswith("(stopped: too many tool rounds for one question)\n")
    assert chat.history[-1]["content"][0]["content"][0]["text"] == ROUND_LIMIT_NOTE  # type: ignore[index]
    await chat.ask("next")  # the history stays valid: every tool_use has its result
    assert standin.requests[3].body["messages"][-1] == {"role": "user", "content": "next"}


async def test_real_recorded_stream_drives_a_tool_call(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    standin.queue(raw_sse((REFERENCE / "messages_stream_tool_use.sse").read_text()), say("18°C."))
    session, out = FakeSession(outcomes={"get_weather": text_result("18°C, clear")}), Transcript()
    await make_chat(standin.client(), session, settings, out).ask("Paris?")
    assert session.calls == [("get_weather", {"location": "Paris"})]
    assert out.text.startswith("I'll check the current weather in Paris for you.\n  ⚙ get_weather")
    echoed = standin.requests[1].body["messages"][1]["content"]
    assert echoed[1] == {
        "type": "tool_use",
        "id": "toolu_01NRLabsLyVHZPKxbKvkfSMn",
        "name": "get_weather",
        "input": {"location": "Paris"},
    }
    assert standin.requests[1].tool_results()[0]["tool_use_id"] == "toolu_01NRLabsLyVHZPKxbKvkfSMn"


async def test_429_is_retried(standin: AnthropicStandIn, settings: ClientSettings) -> None:
    standin.queue(reference_429(), say("after the wait"))
    out = Transcript()
    await make_chat(standin.client(max_retries=1), FakeSession(), settings, out).ask("q")
    assert out.text == "after the wait\n"
    assert [r.headers["x-stainless-retry-count"] for r in standin.requests] == ["0", "1"]


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        pytest.param(reference_429(), "rate-limiting this key (429)", id="429"),
        pytest.param(api_error(529, "overloaded_error", "Overloaded"), "overloaded", id="529"),
        pytest.param(api_error(500, "api_error", "boom"), "server error (500)", id="500"),
        pytest.param(
            api_error(400, "invalid_request_error", "bad"),
            "refused the request (400): bad",
            id="400",
        ),
        pytest.param(
            api_error(404, "not_found_error", "model"), "Model m-test was not found", id="404"
        ),
    ],
)
async def test_api_errors_become_one_line_and_history_is_untouched(
    standin: AnthropicStandIn, settings: ClientSettings, reply: Reply, expected: str
) -> None:
    standin.queue(say("first"), reply, say("recovered"))
    chat = make_chat(standin.client(), FakeSession(), settings, Transcript())
    await chat.ask("one")
    before = list(chat.history)
    with pytest.raises(ClaudeError, match=re.escape(expected)) as caught:
        await chat.ask("two")
    assert "\n" not in str(caught.value)
    assert chat.history == before
    await chat.ask("three")  # the session survives
    assert [m["content"] for m in standin.requests[-1].body["messages"] if m["role"] == "user"] == [
        "one",
        "three",
    ]


async def test_bad_key_says_so(standin: AnthropicStandIn, settings: ClientSettings) -> None:
    chat = make_chat(standin.client(api_key="sk-wrong"), FakeSession(), settings, Transcript())
    with pytest.raises(ClaudeError, match=r"rejected the API key \(401\): check ANTHROPIC_API_KEY"):
        await chat.ask("hi")


async def test_unreachable_api_says_so(settings: ClientSettings) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    client = AsyncAnthropic(api_key="k", base_url=base, max_retries=0)
    with pytest.raises(ClaudeError, match=f"Cannot reach Claude at {base}"):
        await make_chat(client, FakeSession(), settings, Transcript()).ask("hi")


async def test_cancel_mid_answer_rolls_back_history(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    arrived = asyncio.Event()
    standin.queue(say("kept"), Reply(stall=arrived))
    chat = make_chat(standin.client(), FakeSession(), settings, Transcript())
    await chat.ask("one")
    task = asyncio.ensure_future(chat.ask("two"))
    await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m["role"] for m in chat.history] == ["user", "assistant"]


async def test_server_without_tools_sends_no_tools(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    standin.queue(Reply(content=[{"type": "text", "text": ""}]))
    chat = make_chat(standin.client(), FakeSession(tools=[]), settings, Transcript())
    await chat.ask("hi")
    assert "tools" not in standin.requests[0].body
    assert "tool_choice" not in standin.requests[0].body
    assert chat.history == [{"role": "user", "content": "hi"}]  # empty reply is not kept


async def test_through_base_url_on_a_real_port(settings: ClientSettings) -> None:
    standin = AnthropicStandIn()
    standin.queue(use_tools(CA, SF), say("Done over HTTP."))
    session, out = FakeSession(), Transcript()
    with serve_standin(standin) as base_url:
        client = AsyncAnthropic(api_key=standin.api_key, base_url=base_url, max_retries=0)
        await make_chat(client, session, settings, out).ask("both")
        await client.close()
    assert session.calls == [CA, SF]
    assert out.text.endswith("Done over HTTP.\n")
    assert standin.requests[0].headers["host"].startswith("127.0.0.1:")


def _status_error(status: int, body: Any) -> anthropic.APIStatusError:
    request = httpx2.Request("POST", "http://x/v1/messages")
    response = httpx2.Response(status, request=request)
    return anthropic.APIStatusError("error", response=response, body=body)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            anthropic.APITimeoutError(httpx2.Request("POST", "http://x")),
            "Claude did not answer in time: try again.",
            id="timeout",
        ),
        pytest.param(
            _status_error(403, {"error": {"type": "permission_error", "message": "no"}}),
            "This API key may not use model m (403).",
            id="403",
        ),
        pytest.param(
            _status_error(200, {"type": "error", "error": {"type": "overloaded_error"}}),
            "Claude is overloaded right now (529): try again in a moment.",
            id="overloaded-mid-stream",
        ),
        pytest.param(
            _status_error(418, "not json"),
            "Claude refused the request (418): error",
            id="odd-body",
        ),
        pytest.param(
            anthropic.APIError("strange\nthing", httpx2.Request("POST", "http://x"), body=None),
            "Claude request failed: strange thing",
            id="other",
        ),
    ],
)
def test_describe_api_error(exc: anthropic.APIError, expected: str) -> None:
    assert describe_api_error(exc, "m", "http://x") == expected


def test_other_blocks_are_echoed_as_received() -> None:
    block = ThinkingBlock(type="thinking", thinking="hmm", signature="sig")
    assert _assistant_block(block) == {"type": "thinking", "thinking": "hmm", "signature": "sig"}


async def test_confirmation_without_a_way_to_ask_is_a_no(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    session = FakeSession()
    standin.queue(use_tools(CA), say("Not run."))
    out = Transcript()
    chat = make_chat(
        standin.client(), session, dataclasses.replace(settings, confirm_tools=True), out
    )
    await chat.ask("alerts?")
    assert session.calls == []
    assert standin.requests[1].tool_results()[0]["is_error"] is True


async def test_a_fatal_failure_ends_the_question(
    standin: AnthropicStandIn, settings: ClientSettings
) -> None:
    fatal = ClientConnectError("stop", "sign_in_limit", fatal=True)
    session = FakeSession(outcomes={"get_alerts": fatal})
    standin.queue(use_tools(CA))
    with pytest.raises(ClientConnectError, match="stop"):
        await make_chat(standin.client(), session, settings, Transcript()).ask("alerts?")
    passing = FakeSession(outcomes={"get_alerts": ClientConnectError("one call failed")})
    standin.queue(use_tools(CA), say("ok"))
    await make_chat(standin.client(), passing, settings, Transcript()).ask("alerts?")
    assert "one call failed" in standin.requests[-1].tool_results()[0]["content"][0]["text"]

"""Claude over the MCP tools: the streamed agent loop, with history kept across questions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import anthropic
from anthropic import AsyncAnthropic, omit
from anthropic.types import (
    ContentBlock,
    ContentBlockParam,
    Message,
    MessageParam,
    ToolChoiceParam,
    ToolParam,
    ToolResultBlockParam,
    ToolUseBlock,
)

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.errors import ClaudeError
from secure_mcp.client.chat.render import (
    Write,
    one_line,
    show_tool_call,
    show_tool_failure,
    show_tool_result,
)
from secure_mcp.client.chat.tools import claude_tools, tool_failure_block, tool_result_block
from secure_mcp.client.session import ToolSession
from secure_mcp.client.settings import ClientSettings
from secure_mcp.client.terminal import clean

SYSTEM_PROMPT = (
    "You help the user with the tools of an MCP server they signed in to. Call a tool whenever "
    "it helps; independent calls may go together in one turn. Answer briefly and plainly."
)
ROUND_LIMIT_NOTE = "not run: the limit of tool rounds for one question was reached"
DECLINED = "not run: the user declined this tool call"
CONFIRM_PROMPT = "  Run this tool call? [y/N] "

Ask = Callable[[str], Awaitable[str]]
"""Reads the user's answer to a question (the prompt's reader)."""

# (HTTP status, API error type, message): the first row matching either is used.
_STATUS_MESSAGES: tuple[tuple[int, str, str], ...] = (
    (401, "authentication_error", "Claude rejected the API key (401): check ANTHROPIC_API_KEY."),
    (403, "permission_error", "This API key may not use model {model} (403)."),
    (404, "not_found_error", "Model {model} was not found (404): set ANTHROPIC_MODEL."),
    (429, "rate_limit_error", "Claude is rate-limiting this key (429): wait a moment, ask again."),
    (529, "overloaded_error", "Claude is overloaded right now (529): try again in a moment."),
)


def _error_field(body: object, name: str) -> str:
    """`body["error"][name]` of an API error body, or "" when absent."""
    error = body.get("error") if isinstance(body, dict) else None
    value = error.get(name) if isinstance(error, dict) else None
    return value if isinstance(value, str) else ""


def describe_api_error(exc: anthropic.APIError, model: str, base_url: str) -> str:
    """A one-line message for an Anthropic API error (no stack trace reaches the user)."""
    if isinstance(exc, anthropic.APITimeoutError):
        return "Claude did not answer in time: try again."
    if isinstance(exc, anthropic.APIConnectionError):
        return f"Cannot reach Claude at {base_url}: check the network or ANTHROPIC_BASE_URL."
    if not isinstance(exc, anthropic.APIStatusError):
        return f"Claude request failed: {one_line(str(exc))}"
    kind = _error_field(exc.body, "type")
    for status, error_type, message in _STATUS_MESSAGES:
        if exc.status_code == status or kind == error_type:
            return message.format(model=model)
    detail = one_line(_error_field(exc.body, "message") or str(exc), 120)
    if exc.status_code >= 500:
        return f"Claude had a server error ({exc.status_code}): try again. {detail}"
    return f"Claude refused the request ({exc.status_code}): {detail}"


def _assistant_block(block: ContentBlock) -> ContentBlockParam | None:
    """A response block as it goes back in the history; empty text blocks are dropped."""
    if block.type == "text":
        return {"type": "text", "text": block.text} if block.text else None
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return cast(ContentBlockParam, block.to_dict())


class ClaudeChat:
    """One conversation: questions, Claude's streamed answers, and the tool calls between them."""

    def __init__(
        self,
        client: AsyncAnthropic,
        session: ToolSession,
        settings: ClientSettings,
        write: Write,
        ask: Ask | None = None,
    ) -> None:
        self.history: list[MessageParam] = []
        self.confirm_tools = settings.confirm_tools  # ask before each call (`/confirm on|off`)
        self._client = client
        self._session = session
        self._settings = settings
        self._write = write
        self._ask = ask
        self._tools: list[ToolParam] | None = None
        self._mid_line = False

    def clear(self) -> None:
        """Forget the conversation (the `/clear` command)."""
        self.history.clear()

    async def ask(self, question: str) -> None:
        """Answer `question`, calling tools as Claude asks; on failure the history is unchanged."""
        start = len(self.history)
        self.history.append({"role": "user", "content": question})
        try:
            await self._agent_loop()
        except anthropic.APIError as exc:
            del self.history[start:]
            base_url = str(self._client.base_url)
            message = describe_api_error(exc, self._settings.anthropic_model, base_url)
            raise ClaudeError(message) from exc
        except BaseException:  # cancelled (Ctrl-C) or failed: drop the half-answered turn
            del self.history[start:]
            raise
        finally:
            self._end_line()

    async def _agent_loop(self) -> None:
        """Turns until Claude stops asking for tools, at most `max_tool_rounds` tool rounds."""
        tools = await self._claude_tools()
        rounds = 0
        while True:
            may_use_tools = rounds < self._settings.max_tool_rounds
            message = await self._turn(tools, may_use_tools)
            uses = [block for block in message.content if isinstance(block, ToolUseBlock)]
            if not uses:
                return
            if not may_use_tools:  # every tool_use needs its tool_result, even unrun ones
                results = [tool_failure_block(use.id, ROUND_LIMIT_NOTE) for use in uses]
                self.history.append({"role": "user", "content": results})
                self._write("(stopped: too many tool rounds for one question)\n")
                return
            rounds += 1
            # In the order Claude asked, all results in one user message.
            results = [await self._run_tool(use) for use in uses]
            self.history.append({"role": "user", "content": results})

    async def _claude_tools(self) -> list[ToolParam]:
        """The server's tools as Claude tools, listed once per conversation object."""
        if self._tools is None:
            self._tools = claude_tools(await self._session.list_tools())
        return self._tools

    async def _turn(self, tools: list[ToolParam], may_use_tools: bool) -> Message:
        """One streamed request: text is written as it arrives; the reply joins the history."""
        choice: ToolChoiceParam = {"type": "auto"} if may_use_tools else {"type": "none"}
        async with self._client.messages.stream(
            model=self._settings.anthropic_model,
            max_tokens=self._settings.anthropic_max_tokens,
            system=SYSTEM_PROMPT,
            messages=self.history,
            tools=tools if tools else omit,
            tool_choice=choice if tools else omit,
        ) as stream:
            async for text in stream.text_stream:
                self._text(text)
            message = await stream.get_final_message()
        self._end_line()
        content = [p for p in map(_assistant_block, message.content) if p is not None]
        if content:
            self.history.append({"role": "assistant", "content": content})
        return message

    async def _confirmed(self) -> bool:
        """The user's yes to the call just shown; anything else (end of input too) is a no."""
        if self._ask is None:
            return False
        try:
            answer = await self._ask(CONFIRM_PROMPT)
        except (EOFError, KeyboardInterrupt):
            return False
        return answer.strip().lower() in ("y", "yes")

    async def _run_tool(self, use: ToolUseBlock) -> ToolResultBlockParam:
        """Call one tool; its failure (or the user's no) goes back to Claude as `is_error`."""
        show_tool_call(self._write, use.name, use.input)
        if self.confirm_tools and not await self._confirmed():
            show_tool_failure(self._write, DECLINED)
            return tool_failure_block(use.id, DECLINED)
        arguments: dict[str, Any] = dict(use.input)
        try:
            result = await self._session.call_tool(use.name, arguments)
        except ClientConnectError as exc:
            if exc.fatal:  # e.g. the sign-in limit: the client stops
                raise
            return self._failed(use, exc)
        except Exception as exc:  # reported to Claude, never raised past the loop
            return self._failed(use, exc)
        show_tool_result(self._write, result)
        return tool_result_block(use.id, result)

    def _failed(self, use: ToolUseBlock, exc: Exception) -> ToolResultBlockParam:
        message = f"tool call failed: {type(exc).__name__}: {exc}"
        show_tool_failure(self._write, message)
        return tool_failure_block(use.id, message)

    def _text(self, text: str) -> None:
        """Write streamed text (cleaned: it is Claude's), remembering whether the line is open."""
        if text:
            self._write(clean(text))
            self._mid_line = not text.endswith("\n")

    def _end_line(self) -> None:
        """End the streamed line, if one is open, before anything else is shown."""
        if self._mid_line:
            self._write("\n")
            self._mid_line = False

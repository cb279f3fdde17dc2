"""Permissions per tool: the scopes each tool needs, configured in one place (`--tool-scopes`).

Two checks, one configuration. In front of the MCP endpoint, `ToolScopeMiddleware` reads the
JSON-RPC body of a request the bearer gate let through and answers a `tools/call` for a tool the
token may not call with HTTP 403 `insufficient_scope` and the scopes that tool needs, so clients
step up (MCP authorization, "Scope Challenge Handling"; RFC 6750 3.1): a tool error inside a 200
answer would not make any client re-authorize. Inside the MCP server, `ToolPermissions` is the
authority: `tools/list` lists only the tools the token may call, and a call the gate did not
catch is refused there too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secure_mcp.weather.bearer import ACCESS_KEY, refuse
from secure_mcp.weather.errors import InsufficientScopeError

SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 3.3 scope-token


@dataclass(frozen=True)
class ToolScopes:
    """`base` scopes every request needs; `tools` the extra scopes of each listed tool."""

    base: tuple[str, ...]
    tools: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def needed(self, tool: str) -> tuple[str, ...]:
        """Every scope a call of `tool` needs."""
        extra = dict(self.tools).get(tool, ())
        return tuple(dict.fromkeys((*self.base, *extra)))

    def allows(self, tool: str, granted: Iterable[str]) -> bool:
        """True when `granted` covers what `tool` needs."""
        return set(self.needed(tool)) <= set(granted)

    @property
    def all_scopes(self) -> tuple[str, ...]:
        """Every configured scope: PRM `scopes_supported` and the 401 challenge's `scope`."""
        return tuple(dict.fromkeys((*self.base, *(s for _, needed in self.tools for s in needed))))

    @property
    def per_tool(self) -> bool:
        """True when some tool needs more than the base scopes (the checks are then installed)."""
        return any(not set(needed) <= set(self.base) for _, needed in self.tools)

    def check_tools(self, known: Iterable[str]) -> None:
        """ValueError for a tool that does not exist, or one no scope protects."""
        names, listed = set(known), {tool for tool, _ in self.tools}
        unknown = sorted(listed - names)
        if unknown:
            tools = ", ".join(sorted(names))
            raise ValueError(f"no such tool: {', '.join(unknown)} (the tools: {tools})")
        unprotected = sorted(names - listed)
        if self.tools and not self.base and unprotected:
            raise ValueError(
                f"no scope for {', '.join(unprotected)}: give every tool its scopes, or set "
                "required scopes that every request needs"
            )


def parse_tool_scopes(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`get_alerts=weather:alerts,get_forecast=weather:forecast weather:read` -> pairs."""
    pairs: dict[str, tuple[str, ...]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        tool, sep, scopes = item.partition("=")
        names = tuple(scopes.split())
        if not sep or not tool.strip() or not names:
            raise ValueError(f"write TOOL=SCOPE[ SCOPE...], comma-separated: {item!r}")
        if not all(SCOPE_TOKEN.fullmatch(name) for name in names):
            raise ValueError(f"not an RFC 6749 scope: {scopes!r}")
        if tool.strip() in pairs:
            raise ValueError(f"{tool.strip()} is given twice")
        pairs[tool.strip()] = names
    return tuple(pairs.items())


def called_tools(body: bytes) -> list[str]:
    """The tool names of every `tools/call` in a JSON-RPC body (one message or a batch)."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return []  # the MCP server answers the parse error
    messages = parsed if isinstance(parsed, list) else [parsed]
    names = []
    for message in messages:
        if isinstance(message, dict) and message.get("method") == "tools/call":
            params = message.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            names.append(name if isinstance(name, str) else "")
    return names


class ToolScopeMiddleware:
    """HTTP 403 `insufficient_scope` for a `tools/call` the token's scopes do not allow."""

    def __init__(self, app: ASGIApp, *, scopes: ToolScopes, resource_metadata: str) -> None:
        self.app, self.scopes, self.resource_metadata = app, scopes, resource_metadata

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        access = scope.get(ACCESS_KEY)
        if scope["type"] != "http" or scope["method"] != "POST" or access is None:
            await self.app(scope, receive, send)
            return
        messages, body = [], b""
        while True:  # already buffered by the body guard, within its deadline and size limit
            message = await receive()
            messages.append(message)
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        for tool in called_tools(body):
            if not self.scopes.allows(tool, access.scopes):
                # MCP authorization, scope challenge: the scopes this operation needs
                needed = self.scopes.needed(tool)
                wanted = " ".join(needed)
                error = InsufficientScopeError(f"The tool {tool} needs the scope {wanted}.")
                await refuse(send, error, self.resource_metadata, needed, scope)
                return
        await self.app(scope, _replay(messages, receive), send)


def _replay(messages: Sequence[Message], receive: Receive) -> Receive:
    """A `receive` that gives `messages` again, then defers to the real one."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay


class ToolPermissions:
    """MCP server middleware: `tools/list` filtered, `tools/call` refused, by the token's scopes."""

    def __init__(self, scopes: ToolScopes) -> None:
        self.scopes = scopes

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        access = get_access_token()
        granted = access.scopes if access is not None else []
        if ctx.method == "tools/call":
            params = ctx.params if isinstance(ctx.params, Mapping) else {}
            tool = params.get("name")
            if not isinstance(tool, str) or not self.scopes.allows(tool, granted):
                raise MCPError(INVALID_PARAMS, f"The access token may not call the tool {tool}.")
        result = await call_next(ctx)
        if ctx.method == "tools/list":
            return self._visible(result, granted)
        return result

    def _visible(self, result: HandlerResult, granted: Sequence[str]) -> HandlerResult:
        """The tool list without the tools `granted` does not allow."""
        if isinstance(result, BaseModel):
            tools = [t for t in getattr(result, "tools", []) if self.scopes.allows(t.name, granted)]
            return result.model_copy(update={"tools": tools})
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            tools = [t for t in result["tools"] if self.scopes.allows(str(t.get("name")), granted)]
            return {**result, "tools": tools}
        return result

"""What the chat loop and CLI need from an authorized MCP connection."""

from __future__ import annotations

from typing import Any, Protocol

from mcp.types import CallToolResult, Tool


class ToolSession(Protocol):
    """An authorized MCP session: the chat loop and commands speak only to this."""

    async def list_tools(self) -> list[Tool]:
        """The server's tools (every page)."""
        ...

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call one tool; tool failures come back as `isError` results, not exceptions."""
        ...

    async def login(self) -> None:
        """Forget the stored tokens and authorize again (the `/login` command)."""
        ...

    async def logout(self) -> None:
        """Revoke (RFC 7009) and delete the stored tokens (the `/logout` command, `--logout`)."""
        ...

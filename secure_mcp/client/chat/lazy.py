"""Claude, set up at the first question: the Claude SDK (slow to import) is loaded only then."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from secure_mcp.client.chat.repl import Chat


class LazyChat:
    """A `Chat` whose real conversation is started by `start` when the first question comes."""

    def __init__(self, start: Callable[[], Awaitable[Chat]], *, confirm_tools: bool) -> None:
        self._start = start
        self._chat: Chat | None = None
        self._confirm_tools = confirm_tools

    @property
    def confirm_tools(self) -> bool:
        """Ask before each tool call Claude makes (`/confirm on|off`)."""
        return self._confirm_tools

    @confirm_tools.setter
    def confirm_tools(self, value: bool) -> None:
        self._confirm_tools = value
        if self._chat is not None:
            self._chat.confirm_tools = value

    def clear(self) -> None:
        """Forget the conversation (nothing to forget before the first question)."""
        if self._chat is not None:
            self._chat.clear()

    async def ask(self, question: str) -> None:
        """Start Claude if this is the first question, then ask it."""
        if self._chat is None:
            chat = await self._start()
            chat.confirm_tools = self._confirm_tools
            self._chat = chat
        await self._chat.ask(question)

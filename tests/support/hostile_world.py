"""The client as the user runs it (cli.main), against a hostile MCP server, AS and Claude."""

from __future__ import annotations

import contextlib
import dataclasses
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secure_mcp.client.cli import main
from secure_mcp.client.connection import McpToolSession, connect
from secure_mcp.client.settings import ClientSettings
from tests.support.anthropic_standin import API_KEY, AnthropicStandIn
from tests.support.chat_session import Transcript
from tests.support.client_fakes import AS_ORIGIN, RS_ORIGIN, RS_URL, FakeAuthServer, Router
from tests.support.hostile import HostileMcp
from tests.support.scripted_browser import ScriptedBrowser

KEY_ENV = {"ANTHROPIC_API_KEY": API_KEY}

# Written here independently of the client's own rules, so the tests do not grade themselves.
_BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F))}
_BIDI |= set(map(chr, range(0x2066, 0x206A)))


def dangerous(char: str) -> bool:
    """A character a terminal acts on, or one that hides or reorders what is shown."""
    code = ord(char)
    if char in "\n\t":
        return False
    return (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or char in _BIDI
        or char in "\u2028\u2029"
        or 0xD800 <= code <= 0xDFFF
        or 0xE0000 <= code <= 0xE007F
        or (unicodedata.category(char) == "Cf" and char not in "\u200c\u200d")
    )


def assert_inert(text: str) -> None:
    """Nothing in `text` can control the terminal."""
    found = sorted({f"U+{ord(char):04X}" for char in text if dangerous(char)})
    assert not found, f"terminal controls reached the output: {found}"


@dataclass
class World:
    """A hostile MCP server (and a fake AS, Claude stand-in and browser), wired to cli.main."""

    state_dir: Path
    mcp: HostileMcp = field(default_factory=HostileMcp)
    fake_as: FakeAuthServer = field(default_factory=FakeAuthServer)
    browser: ScriptedBrowser = field(default_factory=ScriptedBrowser)
    claude: AnthropicStandIn = field(default_factory=AnthropicStandIn)
    sessions: list[McpToolSession] = field(default_factory=list)
    limits: dict[str, Any] = field(default_factory=dict)  # ClientSettings fields to override
    authorization_timeout: float = 10.0  # seconds the listener waits for the browser

    def __post_init__(self) -> None:
        self.router = Router({AS_ORIGIN: self.fake_as.app()})
        self.router.transports[RS_ORIGIN] = self.mcp  # type: ignore[assignment]
        self.browser.router = self.router

    def connect(self, **extra: Any) -> Callable[..., Any]:
        """cli's `connect`, reaching the hostile servers in process."""

        @contextlib.asynccontextmanager
        async def connected(
            settings: ClientSettings, *, write: Callable[[str], None]
        ) -> AsyncIterator[McpToolSession]:
            async with connect(
                dataclasses.replace(settings, **self.limits),
                write=write,
                http_transport=self.router,
                opener=self.browser.open,
                authorization_timeout=self.authorization_timeout,
                **extra,
            ) as session:
                self.sessions.append(session)
                yield session

        return connected

    def run(
        self,
        *argv: str,
        lines: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        out: Transcript | None = None,
        **overrides: Any,
    ) -> int:
        """`client.py ARGV` with scripted prompt lines; output to stdout/stderr (capsys)."""
        transcript = out or Transcript(*lines)
        overrides.setdefault("read_line", transcript.read_line)
        return main(
            ["--server", RS_URL, "--state-dir", str(self.state_dir), *argv],
            KEY_ENV if env is None else env,
            connect=self.connect(),
            make_anthropic=lambda settings: self.claude.client(),
            **overrides,
        )

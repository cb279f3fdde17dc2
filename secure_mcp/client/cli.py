"""client.py's command line: flags and environment into ClientSettings, then connect and chat.

Imports are lazy, so the program starts fast: `--help` and the flag checks load neither SDK,
`--call` and the prompt load the MCP SDK only, and Claude's SDK is loaded at the first question
(`bench/startup.py` measures each path).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.calls import UsageError, parse_call
from secure_mcp.client.settings import (
    DEFAULT_MODEL,
    DEFAULT_SERVER_URL,
    ISSUER_REQUIRED,
    ClientSettings,
    server_url_problem,
)
from secure_mcp.client.terminal import Terminal, clean_line, color_wanted
from secure_mcp.common.paths import default_client_state_dir
from secure_mcp.common.settings import Option, Options, SettingsError, fail, path

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

    from secure_mcp.client.chat.repl import Chat, ReadLine
    from secure_mcp.client.session import ToolSession

Write = Callable[[str], None]
Connect = Callable[..., AbstractAsyncContextManager["ToolSession"]]
Logout = Callable[..., Any]
AnthropicFactory = Callable[[ClientSettings], "AsyncAnthropic"]
PROGRAM = "client.py"
QUERY_NEEDS_CLAUDE = (
    "Error: --query needs Claude: set ANTHROPIC_API_KEY in .env (see .env.example) or the "
    "environment; without it, --call TOOL JSON calls a tool directly."
)


@dataclass(frozen=True)
class Action:
    """What this run does besides the interactive prompt."""

    query: str | None = None
    call: tuple[str, dict[str, Any]] | None = None
    logout: bool = False


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, never splitting a flag or name at a hyphen (`--client-` / `id`)."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _scope(value: str, name: str) -> str | None:
    """Scopes as one space-separated string (None when only spaces)."""
    return " ".join(value.split()) or None


MACHINE = "without a browser (CI, services)"
OPTIONS = Options(
    (
        Option(
            "--server",
            "MCP_SERVER_URL",
            f"MCP server URL (MCP_SERVER_URL; {DEFAULT_SERVER_URL})",
            default=DEFAULT_SERVER_URL,
        ),
        Option(
            "--state-dir",
            "MCP_CLIENT_STATE_DIR",
            "folder for tokens and registrations (MCP_CLIENT_STATE_DIR)",
            path,
        ),
        Option("--paste", None, "paste the redirect URL or code", switch=True),
        Option("--no-browser", None, "print the sign-in URL only", switch=True),
        Option("--verbose", None, "print each OAuth step", switch=True),
        Option(
            "--client-metadata-url",
            "MCP_CLIENT_METADATA_URL",
            "https URL of a client metadata document (MCP_CLIENT_METADATA_URL)",
        ),
        Option(
            "--client-id",
            "MCP_CLIENT_ID",
            "pre-registered client_id (MCP_CLIENT_ID; secret: MCP_CLIENT_SECRET)",
        ),
        Option(
            "--client-issuer",
            "MCP_CLIENT_ISSUER",
            "issuer of the AS the --client-id is registered with (MCP_CLIENT_ISSUER; required)",
        ),
        Option(
            "--scope",
            "MCP_CLIENT_SCOPE",
            "scopes to ask for when signing in, instead of those the server names; more are "
            "asked for when a tool needs them (MCP_CLIENT_SCOPE)",
            _scope,
        ),
        Option(
            "--client-credentials",
            None,
            "get tokens with the client_credentials grant: no browser, no prompt; needs "
            "--client-id, --client-issuer and MCP_CLIENT_SECRET or --private-key-file",
            switch=True,
            group=MACHINE,
        ),
        Option(
            "--private-key-file",
            "MCP_CLIENT_PRIVATE_KEY_FILE",
            "authenticate with this private key (private_key_jwt, RFC 7523) instead of "
            "MCP_CLIENT_SECRET; a file only you can read (MCP_CLIENT_PRIVATE_KEY_FILE)",
            path,
            metavar="PEM",
            group=MACHINE,
        ),
        Option(
            "--wif-token-file",
            "MCP_WIF_TOKEN_FILE",
            "workload identity federation (MCP extension io.modelcontextprotocol/auth/wif, "
            "SEP-1933): send the JWT in FILE, read again for each token request, with the "
            "jwt-bearer grant (RFC 7523) to --client-issuer (MCP_WIF_TOKEN_FILE)",
            path,
            metavar="FILE",
            group=MACHINE,
        ),
        Option(
            "--idp-token-endpoint",
            "MCP_IDP_TOKEN_ENDPOINT",
            "enterprise-managed authorization (MCP extension io.modelcontextprotocol/"
            "enterprise-managed-authorization, SEP-990): exchange the ID token of --id-token-file "
            "at this identity provider endpoint for an ID-JAG (RFC 8693), "
            "then present it with the jwt-bearer grant as --client-id with MCP_CLIENT_SECRET "
            "(MCP_IDP_TOKEN_ENDPOINT)",
            metavar="URL",
            group=MACHINE,
        ),
        Option(
            "--idp-client-id",
            "MCP_IDP_CLIENT_ID",
            "the client's id at the identity provider (MCP_IDP_CLIENT_ID)",
            group=MACHINE,
        ),
        Option(
            "--id-token-file",
            "MCP_ID_TOKEN_FILE",
            "the user's ID token from the identity provider (MCP_ID_TOKEN_FILE)",
            path,
            metavar="FILE",
            group=MACHINE,
        ),
        Option(
            "--model",
            "ANTHROPIC_MODEL",
            f"Claude model (ANTHROPIC_MODEL; {DEFAULT_MODEL})",
            default=DEFAULT_MODEL,
        ),
        Option(
            "--confirm-tools",
            None,
            "ask before each tool call Claude makes (also /confirm on|off)",
            switch=True,
        ),
        Option(None, "MCP_CLIENT_SECRET"),
        Option(None, "ANTHROPIC_API_KEY"),
        Option(None, "ANTHROPIC_BASE_URL"),
        Option(None, "NO_COLOR"),
    )
)


def build_parser() -> argparse.ArgumentParser:
    """The flags of client.py."""
    parser = OPTIONS.parser(
        "client.py",
        "Sign in to an OAuth-protected MCP server and chat with Claude over its tools.",
        formatter_class=HelpFormatter,
    )
    once = parser.add_mutually_exclusive_group()
    once.add_argument("--query", metavar="TEXT", help="answer one question and exit")
    once.add_argument("--call", nargs=2, metavar=("TOOL", "JSON"), help="call one tool, print JSON")
    once.add_argument("--logout", action="store_true", help="revoke and delete stored tokens")
    return parser


def settings_from(argv: Sequence[str], env: Mapping[str, str]) -> ClientSettings:
    """The settings alone (flags over environment over defaults), as the servers' settings_from."""
    return parse(argv, env)[0]


def parse(argv: Sequence[str], env: Mapping[str, str]) -> tuple[ClientSettings, Action]:
    """Flags over environment over defaults; exits with usage (status 2) on bad flags."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    v = OPTIONS.values(args, env)
    settings = ClientSettings(
        state_dir=v["state_dir"] or default_client_state_dir(env),
        server_url=v["server"],
        paste=bool(v["paste"]),
        open_browser=not v["no_browser"],
        verbose=bool(v["verbose"]),
        client_metadata_url=v["client_metadata_url"],
        client_id=v["client_id"],
        client_secret=v["mcp_client_secret"],
        client_issuer=v["client_issuer"],
        scope=v["scope"],
        anthropic_api_key=v["anthropic_api_key"],
        anthropic_model=v["model"],
        anthropic_base_url=v["anthropic_base_url"],
        confirm_tools=bool(v["confirm_tools"]),
        color=not v["no_color"],
        client_credentials=bool(v["client_credentials"]),
        private_key_file=v["private_key_file"],
        wif_token_file=v["wif_token_file"],
        idp_token_endpoint=v["idp_token_endpoint"],
        idp_client_id=v["idp_client_id"],
        id_token_file=v["id_token_file"],
    )
    if settings.client_id and not settings.client_issuer:
        parser.error(ISSUER_REQUIRED)
    source = "--server" if args.server else "MCP_SERVER_URL"
    problem = server_url_problem(settings.server_url, source)
    if problem is not None:  # one line with the fix, not the whole usage text
        raise SystemExit(fail(PROGRAM, SettingsError(problem)))
    machine = machine_problem(settings)
    if machine:
        parser.error(machine)
    call = None
    if args.call:
        try:
            call = parse_call(f"{args.call[0]} {args.call[1]}")
        except UsageError as exc:
            parser.error(f"--call: {exc}")
    return settings, Action(query=args.query, call=call, logout=args.logout)


def machine_problem(settings: ClientSettings) -> str | None:
    """What is wrong with the flags of the clients without a browser, if anything."""
    modes = [settings.client_credentials, settings.wif_token_file, settings.idp_token_endpoint]
    if sum(1 for mode in modes if mode) > 1:
        return "choose one of --client-credentials, --wif-token-file and --idp-token-endpoint"
    if settings.private_key_file and not settings.client_credentials:
        return "--private-key-file needs --client-credentials"
    if (settings.id_token_file or settings.idp_client_id) and not settings.idp_token_endpoint:
        return "--id-token-file and --idp-client-id need --idp-token-endpoint"
    if not settings.machine:
        return None
    if settings.client_metadata_url:
        return "--client-metadata-url is for browser sign-in only"
    if not settings.client_issuer:
        return "a client without a browser needs --client-issuer (MCP_CLIENT_ISSUER)"
    if not settings.client_id:
        return "a client without a browser needs --client-id (MCP_CLIENT_ID)"
    if settings.wif_token_file:
        return "--wif-token-file sends no client secret" if settings.client_secret else None
    if settings.idp_token_endpoint:
        if not settings.id_token_file or not settings.client_secret:
            return "--idp-token-endpoint needs --id-token-file and MCP_CLIENT_SECRET"
        return None
    if bool(settings.client_secret) == bool(settings.private_key_file):
        return (
            "--client-credentials needs exactly one of MCP_CLIENT_SECRET (the client secret) "
            "and --private-key-file (private_key_jwt)"
        )
    return None


def anthropic_client(settings: ClientSettings) -> AsyncAnthropic:
    """The async Claude client, with the key and base URL of the settings."""
    from anthropic import AsyncAnthropic  # the Claude SDK: only when Claude is asked

    return AsyncAnthropic(api_key=settings.anthropic_api_key, base_url=settings.anthropic_base_url)


def default_reader(state_dir: Path) -> ReadLine:
    """The terminal prompt (prompt_toolkit, loaded only for the interactive prompt)."""
    from secure_mcp.client.chat import prompt

    return prompt.default_reader(state_dir)


def stdout_write(text: str) -> None:
    """Write to stdout (cleaned: no escape sequence but the client's own) and flush at once."""
    Terminal()(text)


def stderr_line(text: str) -> None:
    """A message on stderr (cleaned): sign-in progress and errors stay out of scripted output."""
    Terminal(sys.stderr)(text + "\n")


def error_line(exc: BaseException) -> str:
    """The one line an expected failure is reported with (server text in it made inert)."""
    return f"Error: {clean_line(str(exc))}"


def expected_failure(exc: BaseException) -> BaseException | None:
    """The expected failure in `exc`, looking inside the task groups the MCP session runs in."""
    from secure_mcp.client.chat.repl import EXPECTED_ERRORS

    if isinstance(exc, EXPECTED_ERRORS):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = expected_failure(inner)
            if found is not None:
                return found
    return None


def _connect() -> Connect:
    """The real `connect` (the MCP SDK is imported with it)."""
    from secure_mcp.client.connection import connect

    return connect


def _logout_stored() -> Logout:
    """The real `--logout`."""
    from secure_mcp.client.connection import logout_stored

    return logout_stored


@dataclass
class Runner:
    """One run of client.py, with its outside world injectable for tests."""

    settings: ClientSettings
    write: Write | None = None  # default: stdout, styled when it is a terminal
    note: Callable[[str], None] = stderr_line
    connect: Connect | None = None  # default: connection.connect (the MCP SDK, loaded then)
    logout: Logout | None = None  # default: connection.logout_stored
    make_anthropic: AnthropicFactory = anthropic_client
    read_line: ReadLine | None = None

    def __post_init__(self) -> None:
        if self.write is None:
            self.write = Terminal(color=self.settings.color and color_wanted(sys.stdout, {}))

    @property
    def out(self) -> Write:
        """Where answers and results go."""
        assert self.write is not None  # set in __post_init__
        return self.write

    async def run(self, action: Action) -> int:
        """Do `action` (or the interactive prompt); returns the exit status."""
        if action.logout:
            await (self.logout or _logout_stored())(self.settings, write=self.note)
            return 0
        if action.query is not None and not self.settings.anthropic_api_key:
            self.note(QUERY_NEEDS_CLAUDE)
            return 1
        from secure_mcp.client.chat.repl import EXPECTED_ERRORS

        connect = self.connect or _connect()
        async with connect(self.settings, write=self.note) as session:
            try:
                return await self._session(session, action)
            except EXPECTED_ERRORS as exc:  # here, before the MCP task group wraps it
                self.note(error_line(exc))
                return 1

    async def _session(self, session: ToolSession, action: Action) -> int:
        from secure_mcp.client.chat.lazy import LazyChat

        if action.call is not None:
            return await self._call(session, *action.call)
        async with contextlib.AsyncExitStack() as stack:
            chat = None
            if self.settings.anthropic_api_key:
                start = functools.partial(self._start_claude, stack, session)
                chat = LazyChat(start, confirm_tools=self.settings.confirm_tools)
            if chat is not None and action.query is not None:
                await chat.ask(action.query)
            else:
                await self._interactive(session, chat)
        return 0

    async def _start_claude(self, stack: contextlib.AsyncExitStack, session: ToolSession) -> Chat:
        """Claude's client and conversation, at the first question (the SDK is imported here)."""
        from secure_mcp.client.chat.claude import ClaudeChat

        client = await stack.enter_async_context(self.make_anthropic(self.settings))
        return ClaudeChat(client, session, self.settings, self.out, self._reader())

    def _reader(self) -> ReadLine:
        if self.read_line is None:
            try:
                self.read_line = default_reader(self.settings.state_dir)
            except OSError as exc:  # the history file is a link, another user's, unreadable
                raise ClientConnectError(
                    f"Cannot use the prompt history: {exc}", "storage_error"
                ) from None
        return self.read_line

    async def _call(self, session: ToolSession, name: str, arguments: dict[str, Any]) -> int:
        from secure_mcp.client.chat.calls import check_call
        from secure_mcp.client.chat.render import show_result_json

        try:
            check_call(await session.list_tools(), name, arguments)  # nothing sent if bad
        except UsageError as exc:
            self.note(f"Error: --call {exc}")
            return 1
        result = await session.call_tool(name, arguments)
        show_result_json(self.out, result)
        return 1 if result.is_error else 0

    async def _interactive(self, session: ToolSession, chat: Chat | None) -> None:
        from secure_mcp.client.chat.repl import CLAUDE_OFF, Commands, run_chat

        tools = await session.list_tools()
        names = ", ".join(tool.name for tool in tools) or "none: the server offers no tools"
        self.out(f"Connected to {self.settings.server_url}. Tools: {clean_line(names)}.\n")
        if chat is None:
            self.out(CLAUDE_OFF)
        else:
            self.out(f"Claude ({self.settings.anthropic_model}) is on. /help lists commands.\n")
            if chat.confirm_tools:
                self.out("Each tool call Claude makes waits for your yes (/confirm off).\n")
        await run_chat(self._reader(), Commands(session, chat, self.out), self.out)


def main(argv: Sequence[str], env: Mapping[str, str], **overrides: Any) -> int:
    """Run client.py; expected failures print one line and exit 1, never a traceback."""
    settings, action = parse(argv, env)
    runner = Runner(settings, **overrides)
    try:
        return asyncio.run(runner.run(action))
    except KeyboardInterrupt:
        runner.note("Interrupted.")
        return 130
    except Exception as exc:  # connection, sign-in, MCP or HTTP failures: one line
        failure = expected_failure(exc)
        if failure is None:
            raise
        runner.note(error_line(failure))
        return 1

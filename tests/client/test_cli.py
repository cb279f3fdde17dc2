"""client.py's command line: flags, environment, --call, --query, --logout, the prompt, errors."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from secure_mcp.client import cli
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.chat.repl import CLAUDE_OFF
from secure_mcp.client.cli import Action, anthropic_client, main, parse, stderr_line, stdout_write
from secure_mcp.client.session import ToolSession
from secure_mcp.client.settings import DEFAULT_MODEL, DEFAULT_SERVER_URL, ClientSettings
from tests.support.anthropic_standin import AnthropicStandIn, say, use_tools
from tests.support.chat_session import FakeSession, Transcript, text_result
from tests.support.processes import ROOT

KEY_ENV = {"ANTHROPIC_API_KEY": "sk-ant-standin-key"}


def fake_connect(
    session: ToolSession, seen: list[ClientSettings] | None = None
) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def connect(
        settings: ClientSettings, *, write: Callable[[str], None]
    ) -> AsyncIterator[ToolSession]:
        write("Signed in (fake).")
        if seen is not None:
            seen.append(settings)
        yield session

    return connect


def failing_connect(message: str) -> Callable[..., Any]:
    @contextlib.asynccontextmanager
    async def connect(
        settings: ClientSettings, *, write: Callable[[str], None]
    ) -> AsyncIterator[ToolSession]:
        raise ClientConnectError(message)
        yield FakeSession()  # pragma: no cover - makes this an async generator

    return connect


def test_defaults_come_from_the_environment(tmp_path: Path) -> None:
    settings, action = parse([], {"XDG_CONFIG_HOME": str(tmp_path)})
    assert settings.state_dir == tmp_path / "secure-mcp" / "client"
    assert settings.server_url == DEFAULT_SERVER_URL
    assert settings.anthropic_model == DEFAULT_MODEL
    assert settings.anthropic_api_key is None
    assert (settings.paste, settings.open_browser, settings.verbose) == (False, True, False)
    assert action == Action()


def test_environment_variables_are_read() -> None:
    env = {
        "MCP_SERVER_URL": "http://localhost:9000/mcp",
        "MCP_CLIENT_STATE_DIR": "/tmp/state-env",
        "MCP_CLIENT_METADATA_URL": "https://app.example/client.json",
        "ANTHROPIC_API_KEY": "sk-secret",
        "ANTHROPIC_MODEL": "claude-haiku-4-5",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "MCP_CLIENT_ID": "pre-registered",
        "MCP_CLIENT_SECRET": "client-secret-value",
        "MCP_CLIENT_ISSUER": "http://127.0.0.1:9000",
    }
    settings, _ = parse([], env)
    assert (settings.client_id, settings.client_secret) == ("pre-registered", "client-secret-value")
    assert settings.client_issuer == "http://127.0.0.1:9000"
    assert "client-secret-value" not in repr(settings)
    assert settings.server_url == "http://localhost:9000/mcp"
    assert settings.state_dir == Path("/tmp/state-env")
    assert settings.client_metadata_url == "https://app.example/client.json"
    assert settings.anthropic_api_key == "sk-secret"
    assert settings.anthropic_model == "claude-haiku-4-5"
    assert settings.anthropic_base_url == "http://127.0.0.1:9"
    assert "sk-secret" not in repr(settings)


def test_flags_win_over_the_environment() -> None:
    env = {"MCP_SERVER_URL": "http://env/mcp", "ANTHROPIC_MODEL": "env-model"}
    argv = [
        "--server", "http://flag/mcp", "--state-dir", "/tmp/s", "--paste", "--no-browser",
        "--verbose", "--client-metadata-url", "https://x.example/c.json", "--model", "flag-model",
        "--query", "alerts in CA", "--client-id", "flag-client", "--client-issuer", "http://as",
    ]  # fmt: skip
    settings, action = parse(argv, {**env, "MCP_CLIENT_ID": "env-client", "MCP_CLIENT_ISSUER": "x"})
    assert (settings.client_id, settings.client_issuer) == ("flag-client", "http://as")
    assert settings.server_url == "http://flag/mcp"
    assert settings.state_dir == Path("/tmp/s")
    assert (settings.paste, settings.open_browser, settings.verbose) == (True, False, True)
    assert settings.client_metadata_url == "https://x.example/c.json"
    assert settings.anthropic_model == "flag-model"
    assert action == Action(query="alerts in CA")


def test_scope_flag_and_environment() -> None:
    assert parse([], {})[0].scope is None
    assert parse([], {"MCP_CLIENT_SCOPE": " weather:alerts  x "})[0].scope == "weather:alerts x"
    flag = parse(["--scope", "weather:forecast"], {"MCP_CLIENT_SCOPE": "weather:alerts"})[0]
    assert flag.scope == "weather:forecast"
    assert parse(["--scope", "  "], {})[0].scope is None


def test_call_and_logout_actions() -> None:
    _, call = parse(["--call", "get_alerts", '{"state": "CA"}'], {})
    assert call.call == ("get_alerts", {"state": "CA"})
    _, logout = parse(["--logout"], {})
    assert logout.logout


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--call", "get_alerts", "{bad"], id="bad-json"),
        pytest.param(["--call", "get_alerts", "[]"], id="not-object"),
        pytest.param(["--call", "get_alerts"], id="missing-json"),
        pytest.param(["--query", "x", "--logout"], id="two-actions"),
        pytest.param(["--client-id", "app"], id="client-id-without-issuer"),
    ],
)
def test_bad_flags_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(argv, {})
    assert caught.value.code == 2
    assert "usage: client.py" in capsys.readouterr().err


def test_call_prints_structured_content_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    result = CallToolResult(content=[], structured_content={"alerts": [{"event": "Wind"}]})
    session = FakeSession(outcomes={"get_alerts": result})
    argv = ["--call", "get_alerts", '{"state": "CA"}']
    assert main(argv, {}, connect=fake_connect(session)) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"alerts": [{"event": "Wind"}]}
    assert captured.err == "Signed in (fake).\n"  # progress stays off stdout
    assert session.calls == [("get_alerts", {"state": "CA"})]


def test_call_error_result_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    session = FakeSession(outcomes={"get_alerts": text_result("Unknown state", is_error=True)})
    argv = ["--call", "get_alerts", '{"state": "XX"}']
    assert main(argv, {}, connect=fake_connect(session)) == 1
    assert json.loads(capsys.readouterr().out) == [{"type": "text", "text": "Unknown state"}]


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        pytest.param(
            ["--call", "get_forecast", '{"latitude": 1}'],
            "Error: --call get_forecast needs the argument longitude (number)",
            id="missing-argument",
        ),
        pytest.param(
            ["--call", "get_alert", '{"state": "CA"}'],
            "Error: --call no tool named get_alert here; the server's tools: get_alerts, "
            "get_forecast (/tools shows their arguments)",
            id="unknown-tool",
        ),
    ],
)
def test_a_bad_call_is_one_line_exit_1_and_never_sent(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    session = FakeSession()
    assert main(argv, {}, connect=fake_connect(session)) == 1
    captured = capsys.readouterr()
    assert captured.err == f"Signed in (fake).\n{line}\n"
    assert captured.out == ""
    assert session.calls == []


def test_query_answers_with_tools_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    standin = AnthropicStandIn()
    standin.queue(use_tools(("get_alerts", {"state": "CA"})), say("No alerts in CA."))
    session = FakeSession()
    code = main(
        ["--query", "alerts in CA"],
        KEY_ENV,
        connect=fake_connect(session),
        make_anthropic=lambda settings: standin.client(),
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out == (
        '  ⚙ get_alerts {"state": "CA"}\n'
        "  ↳ get_alerts result for {'state': 'CA'}\n"
        "No alerts in CA.\n"
    )


def test_query_with_a_bad_key_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    standin = AnthropicStandIn()
    code = main(
        ["--query", "hi"],
        {"ANTHROPIC_API_KEY": "sk-wrong"},
        connect=fake_connect(FakeSession()),
        make_anthropic=lambda settings: standin.client(api_key=settings.anthropic_api_key),
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.endswith("Error: Claude rejected the API key (401): check ANTHROPIC_API_KEY.\n")
    assert "Traceback" not in err


def test_query_without_a_key_says_how_to_turn_claude_on(capsys: pytest.CaptureFixture[str]) -> None:
    """An expected failure like the others (README: exit status 1, one line)."""
    seen: list[ClientSettings] = []
    assert main(["--query", "hi"], {}, connect=fake_connect(FakeSession(), seen)) == 1
    assert capsys.readouterr().err == (
        "Error: --query needs Claude: set ANTHROPIC_API_KEY in .env (see .env.example) or the "
        "environment; without it, --call TOOL JSON calls a tool directly.\n"
    )
    assert seen == []  # fails before signing in


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        pytest.param(
            ["--server", "127.0.0.1:8000/mcp"],
            {},
            "--server 127.0.0.1:8000/mcp has no scheme; "
            "did you mean --server http://127.0.0.1:8000/mcp ?",
            id="ip-no-scheme",
        ),
        pytest.param(
            ["--server", "localhost:8000/mcp"],
            {},
            "--server localhost:8000/mcp has no scheme; "
            "did you mean --server http://localhost:8000/mcp ?",
            id="localhost-no-scheme",
        ),
        pytest.param(
            [],
            {"MCP_SERVER_URL": "mcp.example.com/mcp"},
            "MCP_SERVER_URL mcp.example.com/mcp has no scheme; "
            "did you mean MCP_SERVER_URL https://mcp.example.com/mcp ?",
            id="env-remote-no-scheme",
        ),
        pytest.param(
            ["--server", "ftp://127.0.0.1/mcp"],
            {},
            "--server ftp://127.0.0.1/mcp must be an http:// or https:// URL",
            id="other-scheme",
        ),
        pytest.param(
            ["--server", "http:///mcp"], {}, "--server http:///mcp has no host", id="no-host"
        ),
        pytest.param(
            ["--server", "http://127.0.0.1:99999/mcp"],
            {},
            "--server http://127.0.0.1:99999/mcp is not a valid URL (check the port)",
            id="bad-port",
        ),
    ],
)
def test_a_server_url_without_scheme_is_one_line_with_the_fix(
    argv: list[str], env: dict[str, str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(argv, env)
    assert caught.value.code == 2
    assert capsys.readouterr().err == f"client.py: {line}\n"


def test_logout_revokes_without_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[ClientSettings] = []

    async def logout(settings: ClientSettings, write: Callable[[str], None]) -> bool:
        calls.append(settings)
        write("Signed out.")
        return True

    assert main(["--logout", "--state-dir", "/tmp/x"], {}, logout=logout) == 0
    assert calls[0].state_dir == Path("/tmp/x")
    assert capsys.readouterr().err == "Signed out.\n"


def test_connect_errors_are_one_line_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    message = "Cannot reach http://127.0.0.1:8000/mcp (ConnectError); is the server running?"
    assert main(["--call", "t", "{}"], {}, connect=failing_connect(message)) == 1
    captured = capsys.readouterr()
    assert captured.err == f"Error: {message}\n"
    assert captured.out == ""


def test_ctrl_c_during_sign_in_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    @contextlib.asynccontextmanager
    async def interrupted(settings: ClientSettings, *, write: Any) -> AsyncIterator[ToolSession]:
        raise KeyboardInterrupt
        yield FakeSession()  # pragma: no cover - makes this an async generator

    assert main([], {}, connect=interrupted) == 130
    assert capsys.readouterr().err == "Interrupted.\n"


def test_interactive_without_key_greets_and_offers_tools(tmp_path: Path) -> None:
    out = Transcript("/tools", "what is up?")
    code = main(
        ["--state-dir", str(tmp_path)],
        {},
        connect=fake_connect(FakeSession()),
        write=out.write,
        read_line=out.read_line,
    )
    assert code == 0
    assert out.text.startswith(
        "Connected to http://127.0.0.1:8000/mcp. Tools: get_alerts, get_forecast.\n"
        + CLAUDE_OFF
        + "> /tools\n  get_alerts(state)"
    )
    assert out.text.endswith("> what is up?\n" + CLAUDE_OFF + "\n")


def test_interactive_with_key_chats_and_says_when_there_are_no_tools(tmp_path: Path) -> None:
    standin = AnthropicStandIn()
    standin.queue(say("Hello!"))
    out = Transcript("hi", "/quit")
    code = main(
        ["--model", "claude-haiku-4-5"],
        KEY_ENV,
        connect=fake_connect(FakeSession(tools=[])),
        make_anthropic=lambda settings: standin.client(),
        write=out.write,
        read_line=out.read_line,
    )
    assert code == 0
    assert out.text == (
        "Connected to http://127.0.0.1:8000/mcp. Tools: none: the server offers no tools.\n"
        "Claude (claude-haiku-4-5) is on. /help lists commands.\n"
        "> hi\nHello!\n> /quit\n"
    )
    assert standin.requests[0].body["model"] == "claude-haiku-4-5"


async def test_anthropic_client_uses_the_settings(tmp_path: Path) -> None:
    settings = ClientSettings(
        state_dir=tmp_path, anthropic_api_key="sk-x", anthropic_base_url="http://127.0.0.1:9/"
    )
    client = anthropic_client(settings)
    assert str(client.base_url) == "http://127.0.0.1:9/"
    assert client.api_key == "sk-x"
    await client.close()


def test_writers(capsys: pytest.CaptureFixture[str]) -> None:
    stdout_write("part")
    stderr_line("note")
    assert capsys.readouterr() == ("part", "note\n")


def test_default_runner_reads_the_terminal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = Transcript("/quit")
    monkeypatch.setattr(cli, "default_reader", lambda state_dir, **kwargs: out.read_line)
    assert (
        main(
            ["--state-dir", str(tmp_path)], {}, connect=fake_connect(FakeSession()), write=out.write
        )
        == 0
    )
    assert out.text.endswith("> /quit\n")


def test_client_py_help_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "client.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0
    assert "--call TOOL JSON" in done.stdout


def test_mcp_failures_after_connecting_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken(FakeSession):
        async def list_tools(self) -> list[Any]:
            raise MCPError(-32603, "Internal error")

    assert main([], {}, connect=fake_connect(Broken())) == 1
    assert capsys.readouterr().err.endswith("Error: Internal error\n")


def test_query_failure_inside_a_task_group_is_still_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real connect() runs the MCP session in a task group, which wraps what escapes it."""
    inner = fake_connect(FakeSession())

    @contextlib.asynccontextmanager
    async def grouped(settings: ClientSettings, **kwargs: Any) -> AsyncIterator[Any]:
        async with anyio.create_task_group(), inner(settings, **kwargs) as session:
            yield session

    standin = AnthropicStandIn()
    code = main(
        ["--query", "hi"],
        {"ANTHROPIC_API_KEY": "sk-wrong"},
        connect=grouped,
        make_anthropic=lambda settings: standin.client(api_key=settings.anthropic_api_key),
    )
    assert code == 1
    err = capsys.readouterr().err
    assert err.endswith("Error: Claude rejected the API key (401): check ANTHROPIC_API_KEY.\n")
    assert "Traceback" not in err


def test_an_unusable_prompt_history_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refused(state_dir: Path, **kwargs: Any) -> Any:
        raise OSError("/x/prompt-history is a symbolic link; not followed")

    monkeypatch.setattr(cli, "default_reader", refused)
    assert main([], {}, connect=fake_connect(FakeSession())) == 1
    assert capsys.readouterr().err.endswith(
        "Error: Cannot use the prompt history: /x/prompt-history is a symbolic link; not followed\n"
    )


def test_failures_inside_task_groups_are_found(capsys: pytest.CaptureFixture[str]) -> None:
    @contextlib.asynccontextmanager
    async def grouped(settings: ClientSettings, **kwargs: Any) -> AsyncIterator[Any]:
        raise ExceptionGroup("tg", [ValueError("other"), ClientConnectError("the real one")])
        yield FakeSession()  # pragma: no cover - makes this an async generator

    assert main([], {}, connect=grouped) == 1
    assert capsys.readouterr().err == "Error: the real one\n"


def test_unexpected_failures_are_not_hidden() -> None:
    @contextlib.asynccontextmanager
    async def broken(settings: ClientSettings, **kwargs: Any) -> AsyncIterator[Any]:
        raise ExceptionGroup("tg", [ValueError("a bug")])
        yield FakeSession()  # pragma: no cover - makes this an async generator

    with pytest.raises(ExceptionGroup):
        main([], {}, connect=broken)


def test_confirm_tools_is_announced(tmp_path: Path) -> None:
    out = Transcript()
    code = main(
        ["--confirm-tools"],
        KEY_ENV,
        connect=fake_connect(FakeSession()),
        make_anthropic=lambda settings: AnthropicStandIn().client(),
        write=out.write,
        read_line=out.read_line,
    )
    assert code == 0
    assert "Each tool call Claude makes waits for your yes (/confirm off).\n" in out.text


def test_the_real_connect_and_logout_are_loaded_when_needed() -> None:
    from secure_mcp.client import connection

    assert cli._connect() is connection.connect
    assert cli._logout_stored() is connection.logout_stored


def test_settings_from_is_the_settings_of_parse() -> None:
    env = {"MCP_SERVER_URL": "http://127.0.0.1:9/mcp", "NO_COLOR": "1"}
    settings = cli.settings_from(["--paste"], env)
    assert (settings.server_url, settings.paste, settings.color) == (
        env["MCP_SERVER_URL"],
        True,
        False,
    )

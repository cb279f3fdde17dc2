"""client.py starts fast: `--help` imports neither SDK, and only a question imports Claude's.

Timings live in `bench/startup.py`; these tests pin what each path imports, in a fresh
interpreter (this one has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.support.processes import ROOT

HEAVY = ("anthropic", "mcp", "mcp_types", "prompt_toolkit", "httpx2", "jsonschema")


def imported_after(script: str) -> set[str]:
    """The heavy top-level packages a fresh interpreter has imported after running `script`."""
    probe = textwrap.dedent(script) + textwrap.dedent(
        f"""
        import json as _json, sys as _sys
        _found = sorted({{m.split(".")[0] for m in _sys.modules}} & set({list(HEAVY)!r}))
        print("IMPORTED=" + _json.dumps(_found))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    line = [x for x in done.stdout.splitlines() if x.startswith("IMPORTED=")]
    assert line, done.stdout + done.stderr
    return set(json.loads(line[-1].removeprefix("IMPORTED=")))


def test_help_imports_no_sdk() -> None:
    found = imported_after(
        """
        import runpy, sys
        sys.argv = ["client.py", "--help"]
        try:
            runpy.run_path("client.py", run_name="__main__")
        except SystemExit:
            pass
        """
    )
    assert found == set()


def test_a_tool_call_never_imports_claude() -> None:
    """`--call` (connect, list, validate, call, print) goes without the Claude SDK."""
    found = imported_after(
        """
        import contextlib
        from mcp.types import CallToolResult, TextContent, Tool
        from secure_mcp.client import cli

        TOOL = Tool(name="get_alerts", input_schema={
            "type": "object", "properties": {"state": {"type": "string"}}, "required": ["state"]})

        class Session:
            async def list_tools(self):
                return [TOOL]
            async def call_tool(self, name, arguments):
                return CallToolResult(content=[TextContent(type="text", text="ok")])

        @contextlib.asynccontextmanager
        async def connect(settings, *, write):
            yield Session()

        code = cli.main(["--call", "get_alerts", '{"state": "CA"}'], {}, connect=connect)
        assert code == 0, code
        """
    )
    assert "anthropic" not in found
    assert "prompt_toolkit" not in found


def test_the_prompt_imports_claude_only_for_a_question() -> None:
    found = imported_after(
        """
        import contextlib
        from secure_mcp.client import cli
        from tests.support.chat_session import FakeSession, Transcript

        @contextlib.asynccontextmanager
        async def connect(settings, *, write):
            yield FakeSession()

        out = Transcript("/tools", "/call get_alerts {\\"state\\": \\"CA\\"}", "/help")
        code = cli.main([], {"ANTHROPIC_API_KEY": "sk-ant-x"}, connect=connect,
                        write=out.write, read_line=out.read_line)
        assert code == 0, code
        assert "Claude (" in out.text, out.text
        """
    )
    assert "anthropic" not in found

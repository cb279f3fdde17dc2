"""The README says what the programs do: every message client.py can stop with is explained in
its Troubleshooting section, and the exit statuses are the ones its table gives."""

from __future__ import annotations

import ast
import re

import pytest

from secure_mcp.client import cli
from secure_mcp.client.auth.registration import gone_message
from secure_mcp.client.connection import _server_error
from tests.support.processes import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
ERRORS = {"ClientConnectError", "StorageError", "UsageError", "RegistrationGone"}
# Messages no user can meet (guards against states the code never creates).
INTERNAL = {
    "tokens arrived before the authorization server was known",
    "a client registration arrived before the issuer was known",
    "The sign-in listener is not bound to its redirect URI",
    "The sign-in URL is not the authorization endpoint of",
    "A machine client never signs in through a browser.",  # machine.py: no redirect is made
    "The machine client's credentials do not belong to this",  # check_issuer stops it first
}


def _section(name: str) -> str:
    start = README.index(f"<!-- section:{name} -->")
    return " ".join(README[start : README.index(f"<!-- /section:{name} -->")].split())


def _literal(node: ast.expr) -> str | None:
    """A message's text, each placeholder as `{}`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return (_literal(node.left) or "") + (_literal(node.right) or "")
    return None


def _words(text: str) -> str:
    """The words a reader finds a message by: the start of its first fixed piece of some
    length (up to 40 characters, or a parenthesis)."""
    pieces = [piece.strip(" .;:,()") for piece in text.split("{}")]
    piece = next((piece for piece in pieces if len(piece) >= 12), max(pieces, key=len))
    return piece.split("(")[0][:40].strip()


def client_messages() -> set[str]:
    """The fixed words of every error message the client raises."""
    found: set[str] = set()
    for path in (ROOT / "secure_mcp" / "client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = getattr(node, "func", None)
            name = getattr(func, "id", getattr(func, "attr", ""))
            if isinstance(node, ast.Call) and name in ERRORS and node.args:
                text = _literal(node.args[0])
                if text:
                    found.add(_words(text))
    extra = [
        gone_message("{}"),
        str(_server_error("{}", 503, "temporarily_unavailable")),
        str(_server_error("{}", 503, "introspection_refused")),
        str(_server_error("{}", 503)),
        cli.QUERY_NEEDS_CLAUDE,
    ]
    found |= {_words(text) for text in extra}
    internal = {_words(text) for text in INTERNAL}
    return {message for message in found if len(message) > 8} - internal


@pytest.mark.parametrize("message", sorted(client_messages()))
def test_every_client_message_is_in_troubleshooting(message: str) -> None:
    assert " ".join(message.split()) in _section("troubleshooting")


def test_the_exit_statuses_are_the_readmes() -> None:
    table = dict(re.findall(r"^\| `(\d+)` \| (.+) \|$", README, re.MULTILINE))
    assert set(table) == {"0", "1", "2", "130"}
    assert "`--query` without `ANTHROPIC_API_KEY`" in table["1"]
    assert "a `--call` to an unknown tool or with wrong arguments" in table["1"]
    assert "a `--server` without `http://` or `https://`" in table["2"]
    with pytest.raises(SystemExit) as usage:
        cli.parse(["--server", "127.0.0.1:8000/mcp"], {})
    assert usage.value.code == 2
    assert cli.main(["--query", "hi"], {}) == 1

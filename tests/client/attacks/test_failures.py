"""Every failure a user can meet is one line and exit status 1, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.support.client_fakes import RS_ORIGIN, FakeAuthServer
from tests.support.hostile import Answer, HostileMcp, rpc
from tests.support.hostile_world import World, assert_inert


def _one_line_exit_1(world: World, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = world.run(*argv, lines=("/tools",))
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in out + err
    assert_inert(out + err)
    last = err.splitlines()[-1]
    assert last.startswith("Error: ")
    return last


MCP_ANSWERS: dict[str, Callable[[HostileMcp], None]] = {
    "tools-list-error": lambda mcp: mcp.handlers.__setitem__(
        "tools/list", lambda i, p: rpc(i, error={"code": -32603, "message": "no tools today"})
    ),
    "tools-list-wrong-shape": lambda mcp: mcp.handlers.__setitem__(
        "tools/list", lambda i, p: rpc(i, {"tools": "none", "resultType": "complete"})
    ),
    "tools-list-not-json": lambda mcp: mcp.handlers.__setitem__(
        "tools/list", lambda i, p: Answer(body=b"{not json")
    ),
    "discover-wrong-shape": lambda mcp: mcp.handlers.__setitem__(
        "server/discover", lambda i, p: rpc(i, {"supportedVersions": 7})
    ),
    "discover-html": lambda mcp: mcp.handlers.__setitem__(
        "server/discover", lambda i, p: Answer(headers={"content-type": "text/html"}, body=b"<p>")
    ),
    "redirect-elsewhere": lambda mcp: setattr(
        mcp, "every_request", Answer(307, {"location": "https://elsewhere.example/mcp?x=1"})
    ),
    "redirect-same-origin": lambda mcp: setattr(
        mcp, "every_request", Answer(302, {"location": "/other"})
    ),
}


@pytest.mark.parametrize("script", MCP_ANSWERS.values(), ids=MCP_ANSWERS.keys())
def test_a_bad_mcp_answer_at_start_up_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], script: Callable[[HostileMcp], None]
) -> None:
    world = World(tmp_path / "state")
    script(world.mcp)
    _one_line_exit_1(world, capsys)


def test_a_redirect_names_where_it_goes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    world = World(tmp_path / "state")
    world.mcp.every_request = Answer(307, {"location": "https://elsewhere.example/mcp?x=1"})
    last = _one_line_exit_1(world, capsys, "--call", "get_alerts", "{}")
    assert last == (
        "Error: The server at http://127.0.0.1:8000/mcp redirects to "
        "https://elsewhere.example/mcp (HTTP 307); the client does not follow redirects of the "
        "MCP endpoint. If that is the server you mean, connect with --server set to it."
    )


def test_a_malformed_tool_result_is_an_error_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path / "state")
    world.mcp.handlers["tools/call"] = lambda i, p: rpc(i, {"content": 5, "isError": "no"})
    assert world.run("--call", "get_alerts", "{}") == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "malformed answer" in out


class OddAuthServer(FakeAuthServer):
    """Answers one endpoint with a scripted body instead of a valid document."""

    def __init__(self, path: str, answer: Response) -> None:
        super().__init__()
        self.odd_path, self.answer = path, answer

    def app(self) -> Any:
        inner = super().app()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == self.odd_path:
                await self.answer(scope, receive, send)
                return
            await inner(scope, receive, send)

        return app


AS_ANSWERS = {
    "metadata-not-json": ("/.well-known/oauth-authorization-server", Response("{x", 200)),
    "metadata-wrong-types": (
        "/.well-known/oauth-authorization-server",
        JSONResponse({"issuer": 5, "authorization_endpoint": []}),
    ),
    "registration-not-json": ("/register", Response("<html>", 201)),
    "registration-no-client-id": ("/register", JSONResponse({"client_name": "x"}, 201)),
    "token-not-json": ("/token", Response("ok", 200)),
    "token-no-access-token": ("/token", JSONResponse({"token_type": "Bearer"})),
    "token-wrong-types": ("/token", JSONResponse({"access_token": 5, "token_type": []})),
}


@pytest.mark.parametrize(("path", "answer"), AS_ANSWERS.values(), ids=AS_ANSWERS.keys())
def test_a_bad_authorization_server_answer_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str, answer: Response
) -> None:
    fake_as = OddAuthServer(path, answer)
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    _one_line_exit_1(world, capsys, "--call", "get_alerts", "{}")


def test_a_bad_protected_resource_document_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_as = FakeAuthServer()
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.mcp.prm_padding = 10  # then break it

    original = world.mcp._metadata

    def broken(request: Request) -> Any:
        response = original(request)
        if response.status_code == 200:
            import httpx2

            return httpx2.Response(200, json={"resource": 5, "authorization_servers": "x"})
        return response

    world.mcp._metadata = broken  # type: ignore[method-assign,assignment]
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    _one_line_exit_1(world, capsys, "--call", "get_alerts", "{}")


def test_a_registration_the_trace_cannot_read_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_as = OddAuthServer("/register", Response("<html>", 201))
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    last = _one_line_exit_1(world, capsys, "--verbose", "--call", "get_alerts", "{}")
    assert last.startswith(
        "Error: The answer from http://127.0.0.1:9000/register is malformed (JSONDecodeError: "
    )

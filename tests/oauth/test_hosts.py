"""DNS rebinding: oauth.py answers only for its own host names (421 for any other Host)."""

from __future__ import annotations

import pytest
from starlette.types import Message, Receive, Scope, Send

from secure_mcp.common.hosts import HostCheckMiddleware
from tests.support.oauth_harness import Harness

FOREIGN = [
    "evil.example",
    "evil.example:8003",
    "127.0.0.1:9999",
    "localhost",
    "127.0.0.1.nip.io:8003",
]
PATHS = ["/health", "/.well-known/oauth-authorization-server", "/authorize?client_id=x"]


@pytest.mark.parametrize("host", FOREIGN)
async def test_a_foreign_host_is_misdirected(oauth: Harness, host: str) -> None:
    for path in PATHS:
        response = await oauth.http.get(path, headers={"host": host})
        assert response.status_code == 421, (host, path)
        assert response.text.startswith("Misdirected request: this server does not answer")
        assert oauth.settings.issuer in response.text
        assert response.headers["x-frame-options"] == "DENY"
        assert "set-cookie" not in response.headers
    posted = await oauth.http.post("/token", data={"grant_type": "x"}, headers={"host": host})
    assert posted.status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1:8003", "LOCALHOST:8003", "[::1]:8003"])
async def test_our_names_are_served(oauth: Harness, host: str) -> None:
    response = await oauth.http.get("/health", headers={"host": host, "x-forwarded-host": "evil"})
    assert response.status_code == 200


async def test_a_request_without_host_is_misdirected(oauth: Harness) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "scheme": "http",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8003),
    }
    await oauth.app(scope, receive, send)
    assert sent[0]["status"] == 421


async def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        pass

    middleware = HostCheckMiddleware(inner, frozenset({"a:1"}), "http://a:1")
    await middleware({"type": "lifespan"}, nothing, ignore)
    assert seen == ["lifespan"]

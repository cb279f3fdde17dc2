"""Permissions per tool: 403 insufficient_scope with the tool's scope, tools/list filtered."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.shared.exceptions import MCPError
from mcp_types import ListToolsResult, Tool

from secure_mcp.weather.app import Seams, build_app
from secure_mcp.weather.bearer import ACCESS_KEY
from secure_mcp.weather.permissions import (
    ToolPermissions,
    ToolScopeMiddleware,
    ToolScopes,
    called_tools,
    parse_tool_scopes,
)
from secure_mcp.weather.settings import SettingsError, settings_from
from tests.support.weather_app import (
    MCP_HEADERS,
    ORIGIN,
    PRM,
    FakeIntrospectionServer,
    make_settings,
    serving,
)

PER_TOOL = (("get_alerts", ("weather:alerts",)), ("get_forecast", ("weather:forecast",)))
CHALLENGE = f'Bearer resource_metadata="{PRM}", scope="weather:alerts weather:forecast"'
CALL_ALERTS = {"name": "get_alerts", "arguments": {"state": "FL"}}
CALL_FORECAST = {"name": "get_forecast", "arguments": {"latitude": 33.8, "longitude": -117.9}}


@contextlib.asynccontextmanager
async def per_tool_weather(
    auth_server: FakeIntrospectionServer, **overrides: Any
) -> AsyncIterator[httpx2.AsyncClient]:
    """The weather app with a scope per tool and no base scope, lifespan running."""
    settings = make_settings(required_scopes=(), tool_scopes=PER_TOOL, **overrides)
    app = build_app(settings, seams=Seams(introspection_transport=auth_server.transport()))
    async with serving(app) as client:
        yield client


async def call(
    http: httpx2.AsyncClient, token: str, params: dict[str, Any], *, batch: bool = False
) -> httpx2.Response:
    """POST a tools/call (legacy protocol, no session needed: the server is stateless)."""
    message = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    headers["mcp-protocol-version"] = "2025-11-25"
    body = json.dumps([message] if batch else message)
    return await http.post("/mcp", content=body, headers=headers)


async def test_a_tool_without_its_scope_is_403_with_the_scope_it_needs(
    auth_server: FakeIntrospectionServer,
) -> None:
    token = auth_server.jwt(scope="weather:alerts")
    async with per_tool_weather(auth_server) as http:
        allowed = await call(http, token, CALL_ALERTS)
        refused = await call(http, token, CALL_FORECAST)
        in_batch = await call(http, token, CALL_FORECAST, batch=True)
        unnamed = await call(http, token, {"arguments": {}})
    assert allowed.status_code == 200
    assert '"isError":false' in allowed.text.replace(" ", "")
    for response in (refused, in_batch):
        assert response.status_code == 403
        assert response.headers.get_list("www-authenticate")[0] == (
            f'Bearer resource_metadata="{PRM}", scope="weather:forecast", '
            'error="insufficient_scope", '
            'error_description="The tool get_forecast needs the scope weather:forecast."'
        )
        assert response.json()["error"] == "insufficient_scope"
    assert unnamed.status_code == 200  # no tool named: the MCP server's own JSON-RPC error
    assert "may not call the tool None" in unnamed.text


async def test_the_union_of_scopes_calls_both(auth_server: FakeIntrospectionServer) -> None:
    token = auth_server.jwt(scope="weather:alerts weather:forecast")
    async with per_tool_weather(auth_server) as http:
        assert (await call(http, token, CALL_ALERTS)).status_code == 200
        assert (await call(http, token, CALL_FORECAST)).status_code == 200


async def test_the_challenge_and_the_metadata_list_every_configured_scope(
    auth_server: FakeIntrospectionServer,
) -> None:
    async with per_tool_weather(auth_server) as http:
        missing = await http.post("/mcp", headers=MCP_HEADERS, json={})
        metadata = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
    assert missing.headers.get_list("www-authenticate")[0] == CHALLENGE
    assert metadata["scopes_supported"] == ["weather:alerts", "weather:forecast"]


@pytest.mark.parametrize(
    ("scope", "visible"),
    [
        ("weather:alerts", ["get_alerts"]),
        ("weather:forecast", ["get_forecast"]),
        ("weather:alerts weather:forecast", ["get_alerts", "get_forecast"]),
        ("other", []),
    ],
)
async def test_tools_list_shows_only_the_tools_the_caller_may_call(
    auth_server: FakeIntrospectionServer, scope: str, visible: list[str]
) -> None:
    async with per_tool_weather(auth_server) as http:
        http.headers["authorization"] = f"Bearer {auth_server.jwt(scope=scope)}"
        async with Client(streamable_http_client(f"{ORIGIN}/mcp", http_client=http)) as client:
            names = sorted(tool.name for tool in (await client.list_tools()).tools)
    assert names == visible


async def test_the_default_keeps_weather_read_for_both(
    auth_server: FakeIntrospectionServer,
) -> None:
    settings = make_settings()
    assert not settings.scopes.per_tool
    app = build_app(settings, seams=Seams(introspection_transport=auth_server.transport()))
    async with serving(app) as http:
        token = auth_server.jwt(scope="weather:read")
        assert (await call(http, token, CALL_FORECAST)).status_code == 200
        assert (
            await call(http, auth_server.jwt(scope="weather:alerts"), CALL_ALERTS)
        ).status_code == 403


async def test_base_scopes_and_tool_scopes_add_up(auth_server: FakeIntrospectionServer) -> None:
    tools = (("get_forecast", ("weather:forecast",)),)
    settings = make_settings(required_scopes=("weather:read",), tool_scopes=tools)
    app = build_app(settings, seams=Seams(introspection_transport=auth_server.transport()))
    async with serving(app) as http:
        read = auth_server.jwt(scope="weather:read")
        both = auth_server.jwt(scope="weather:read weather:forecast")
        assert (await call(http, read, CALL_ALERTS)).status_code == 200
        refused = await call(http, read, CALL_FORECAST)
        assert (await call(http, both, CALL_FORECAST)).status_code == 200
        only_forecast = await call(http, auth_server.jwt(scope="weather:forecast"), CALL_FORECAST)
    assert 'scope="weather:read weather:forecast"' in refused.headers["www-authenticate"]
    assert only_forecast.status_code == 403  # the base scope is needed for everything
    assert 'scope="weather:read"' in only_forecast.headers["www-authenticate"]


async def test_odd_bodies_pass_to_the_mcp_server(auth_server: FakeIntrospectionServer) -> None:
    token = auth_server.jwt(scope="weather:alerts")
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    async with per_tool_weather(auth_server) as http:
        garbage = await http.post("/mcp", content=b"{not json", headers=headers)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        legacy = {**headers, "mcp-protocol-version": "2025-11-25"}
        other = await http.post("/mcp", json=ping, headers=legacy)
    assert garbage.status_code == 400  # the SDK's own parse error
    assert other.status_code == 200


def test_called_tools_reads_single_messages_and_batches() -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a"}}
    assert called_tools(json.dumps(call).encode()) == ["a"]
    assert called_tools(json.dumps([call, {**call, "params": {"name": "b"}}]).encode()) == [
        "a",
        "b",
    ]
    assert called_tools(json.dumps({**call, "params": "x"}).encode()) == [""]
    assert called_tools(json.dumps({**call, "method": "tools/list"}).encode()) == []
    assert called_tools(b"\xff") == []
    assert called_tools(b"[1, 2]") == []


async def test_the_server_side_check_is_the_authority() -> None:
    # Whatever the HTTP gate missed, the MCP server refuses and hides (ToolPermissions).
    permissions = ToolPermissions(ToolScopes((), PER_TOOL))
    token = AccessToken(token="t", client_id="c", scopes=["weather:alerts"])
    listed = {"tools": [{"name": "get_alerts"}, {"name": "get_forecast"}]}

    class Ctx:
        def __init__(self, method: str, params: Any) -> None:
            self.method, self.params = method, params

    async def answer(ctx: Any) -> Any:
        return listed if ctx.method == "tools/list" else {"ok": True}

    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        visible = await permissions(Ctx("tools/list", None), answer)  # type: ignore[arg-type]
        assert visible == {"tools": [{"name": "get_alerts"}]}
        ok = await permissions(Ctx("tools/call", {"name": "get_alerts"}), answer)  # type: ignore[arg-type]
        assert ok == {"ok": True}
        for params in ({"name": "get_forecast"}, {}, None):
            with pytest.raises(MCPError, match="may not call"):
                await permissions(Ctx("tools/call", params), answer)  # type: ignore[arg-type]
        assert await permissions(Ctx("ping", None), answer) == {"ok": True}  # type: ignore[arg-type]
        odd = await permissions(Ctx("tools/list", None), lambda ctx: _value(None))  # type: ignore[arg-type]
        assert odd is None
        model = ListToolsResult(tools=[tool("get_alerts"), tool("get_forecast")])
        filtered = await permissions(Ctx("tools/list", None), lambda ctx: _value(model))  # type: ignore[arg-type]
        assert [t.name for t in filtered.tools] == ["get_alerts"]  # type: ignore[union-attr]
    finally:
        auth_context_var.reset(reset)
    nobody = await permissions(Ctx("tools/list", None), answer)  # type: ignore[arg-type]
    assert nobody == {"tools": []}


async def _value(value: Any) -> Any:
    return value


def tool(name: str) -> Tool:
    """A minimal MCP tool description."""
    return Tool(name=name, input_schema={"type": "object"})


async def test_a_body_in_several_chunks_is_read_whole_and_given_again() -> None:
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        assert (await receive())["type"] == "http.disconnect"  # the real receive afterwards

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": CALL_ALERTS})
    chunks = [body[:10].encode(), body[10:].encode()]
    messages = [
        {"type": "http.request", "body": chunks[0], "more_body": True},
        {"type": "http.request", "body": chunks[1], "more_body": False},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Any:
        return messages.pop(0)

    gate = ToolScopeMiddleware(app, scopes=ToolScopes((), PER_TOOL), resource_metadata=PRM)
    token = AccessToken(token="t", client_id="c", scopes=["weather:alerts"])
    scope = {"type": "http", "method": "POST", ACCESS_KEY: token}
    await gate(scope, receive, _nothing)
    assert seen == chunks


async def _nothing(*_: Any) -> None:
    """An ASGI send that drops everything."""


def test_tool_scopes_settings() -> None:
    env = {"INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "s"}
    flag = "get_alerts=weather:alerts, get_forecast=weather:forecast weather:read"
    settings = settings_from(["--tool-scopes", flag], env)
    assert settings.required_scopes == ()  # none unless given: each tool names its own
    assert settings.tool_scopes == (
        ("get_alerts", ("weather:alerts",)),
        ("get_forecast", ("weather:forecast", "weather:read")),
    )
    assert settings.scopes.all_scopes == ("weather:alerts", "weather:forecast", "weather:read")
    from_env = settings_from(
        [], {**env, "WEATHER_TOOL_SCOPES": "get_alerts=a", "WEATHER_REQUIRED_SCOPES": "b"}
    )
    assert (from_env.required_scopes, from_env.tool_scopes) == (("b",), (("get_alerts", ("a",)),))
    assert settings_from([], env).tool_scopes == ()
    for bad, message in [
        ("get_alerts", "TOOL=SCOPE"),
        ("=x", "TOOL=SCOPE"),
        ("get_alerts=", "TOOL=SCOPE"),
        ('get_alerts=a"b', "not an RFC 6749 scope"),
        ("get_alerts=a,get_alerts=b", "given twice"),
    ]:
        with pytest.raises(SettingsError, match=message):
            settings_from(["--tool-scopes", bad], env)
    assert parse_tool_scopes(",, get_alerts=a ,") == (("get_alerts", ("a",)),)


@pytest.mark.parametrize(
    ("required", "tools", "message"),
    [
        ((), (("get_alert", ("a",)),), "no such tool: get_alert"),
        ((), (("get_alerts", ("a",)),), "no scope for get_forecast"),
    ],
    ids=["misspelt-tool", "unprotected-tool"],
)
def test_a_tool_scope_mistake_stops_the_start(
    required: tuple[str, ...], tools: tuple[tuple[str, tuple[str, ...]], ...], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        build_app(make_settings(required_scopes=required, tool_scopes=tools))
    # with a base scope, a tool without its own needs just that
    build_app(
        make_settings(required_scopes=("weather:read",), tool_scopes=(("get_alerts", ("a",)),))
    )

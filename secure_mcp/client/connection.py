"""Connect to an OAuth-protected MCP server: sign in or reuse stored tokens, hand out a session."""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import webbrowser
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.auth import OAuthFlowError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth_utils import resource_url_from_server_url
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, Implementation, TextContent, Tool
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    LATEST_PROTOCOL_VERSION,
    PROTOCOL_VERSION_META_KEY,
)

from secure_mcp.client.auth.browser import Opener
from secure_mcp.client.auth.dpop import DpopKeys, DpopTransport
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.interaction import AUTHORIZATION_TIMEOUT, Authorizer
from secure_mcp.client.auth.machine import machine_assertion, machine_state_dir
from secure_mcp.client.auth.machines import machine_provider
from secure_mcp.client.auth.paste import InputFn
from secure_mcp.client.auth.provider import (
    EXPECTED_FAILURES,
    ProviderParts,
    SecureOAuthProvider,
)
from secure_mcp.client.auth.revocation import Assertion, Outcome, revoke_tokens
from secure_mcp.client.auth.storage import FileTokenStorage, StorageError
from secure_mcp.client.auth.transport import Bounds, ReportingTransport, network_transport
from secure_mcp.client.limits import bounded_tools, truncate_result
from secure_mcp.client.settings import ClientSettings
from secure_mcp.client.terminal import clean_line

__all__ = ["ClientConnectError", "McpToolSession", "connect", "http_transport", "logout_stored"]

Write = Callable[[str], None]
T = TypeVar("T")
CLIENT_INFO = Implementation(name="secure-mcp-client", version="0.1.0")
MAX_MESSAGE_CHARS = 300  # of server text quoted in a one-line error
# Failures of one tool call that Claude and the user are told about as the call's result.
_RESULT_FAILURES = ("response_too_large", "timeout", "invalid_response")


def _quiet_sdk_logs() -> None:
    """The SDK logs expected OAuth failures with tracebacks; we report them in one line instead."""
    logger = logging.getLogger("mcp")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _status_error(url: str, response: httpx2.Response) -> ClientConnectError | None:
    """A one-line error for an MCP server answer that means we cannot go on, else None."""
    status = response.status_code
    if response.next_request is not None or 300 <= status < 400:
        location = response.headers.get("location", "(nowhere)")
        target = httpx2.URL(url).join(location).copy_with(query=None, fragment=None)
        return ClientConnectError(
            f"The server at {url} redirects to {clean_line(str(target))} (HTTP {status}); "
            "the client does not follow redirects of the MCP endpoint. If that is the server "
            "you mean, connect with --server set to it.",
            "redirected",
        )
    if status == 403:
        return ClientConnectError(
            f"The server at {url} refuses access (HTTP 403).", "insufficient_scope"
        )
    if status == 404:
        return ClientConnectError(
            f"There is no MCP server at {url} (HTTP 404); check --server.", "not_found"
        )
    if status == 429:
        wait = response.headers.get("retry-after", "")  # the server's text: digits only
        when = f"in {wait} s" if wait.isdigit() and len(wait) <= 5 else "in a moment"
        return ClientConnectError(
            f"The server at {url} is refusing this address for now (HTTP 429: too many "
            f"invalid tokens from it); try again {when}.",
            "too_many_requests",
        )
    if status >= 500:
        return _server_error(url, status, _error_code(response.content))
    return None


def _error_code(body: bytes) -> str:
    """The `error` member of a JSON error body ("" when there is none)."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, str) else ""


def _server_error(url: str, status: int, error: str = "") -> ClientConnectError:
    """The one-line error for a 5xx from the MCP server.

    A 503 says why when the server gives its reason (weather.py does): its authorization server
    cannot be reached, or it refuses the MCP server's own credentials (then no sign-in helps).
    """
    if status != 503:
        return ClientConnectError(
            f"The MCP server at {url} failed (HTTP {status}).", "server_error"
        )
    if error == "temporarily_unavailable":
        message = (
            f"The MCP server at {url} cannot reach its authorization server to check tokens "
            "(HTTP 503); is the authorization server running?"
        )
    elif error == "introspection_refused":
        message = (
            f"The MCP server at {url} cannot check tokens: its authorization server refuses "
            "the MCP server's own credentials (HTTP 503). Your sign-in is fine; the MCP server "
            "needs fixing (for weather.py: start oauth.py with the same data folder, then try "
            "again)."
        )
    else:
        message = f"The MCP server at {url} is unavailable (HTTP 503); try again in a moment."
    return ClientConnectError(message, "temporarily_unavailable")


def as_connect_error(exc: Exception) -> ClientConnectError:
    """The one-line, user-facing form of an expected failure."""
    if isinstance(exc, ClientConnectError):
        return exc
    if isinstance(exc, OAuthFlowError):
        return ClientConnectError(f"Sign-in failed: {quoted(str(exc))}", "authorization_failed")
    return ClientConnectError(str(exc), "storage_error")


def quoted(text: str) -> str:
    """Server text for a one-line message: inert, on one line, and not too long."""
    flat = " ".join(clean_line(text).split())
    return flat if len(flat) <= MAX_MESSAGE_CHARS else flat[: MAX_MESSAGE_CHARS - 1] + "…"


def malformed_answer(url: str, what: str, exc: Exception) -> ClientConnectError:
    """One line for an MCP answer that does not follow the protocol."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ClientConnectError(
        f"The server at {url} sent a malformed answer to {what} ({quoted(first)}).",
        "invalid_response",
    )


async def _checked(provider: SecureOAuthProvider, send: Callable[[], Awaitable[T]]) -> T:
    """Run `send`, turning the provider's expected failures into ClientConnectError."""
    provider.failures.take()
    try:
        result = await send()
    except (*EXPECTED_FAILURES, MCPError, ValueError) as exc:  # ValidationError is a ValueError
        cause: Exception = provider.failures.take() or exc
        if isinstance(cause, MCPError):
            raise
        if isinstance(cause, ValueError):
            raise malformed_answer(provider.context.server_url, "a request", cause) from exc
        raise as_connect_error(cause) from exc
    failure = provider.failures.take()
    if failure is not None:
        raise as_connect_error(failure)
    return result


def discover_request() -> tuple[dict[str, Any], dict[str, str]]:
    """The `server/discover` request the SDK opens a session with, and its headers.

    Stamped as the SDK stamps it for the newest revision (2026-07-28, SEP-2575 and SEP-2243):
    `_meta` with the protocol version, the client's info and capabilities (none: no sampling,
    elicitation or roots), and the `Mcp-Method` header. (`ping` is gone from that revision.)
    """
    meta = {
        PROTOCOL_VERSION_META_KEY: LATEST_PROTOCOL_VERSION,
        CLIENT_INFO_META_KEY: CLIENT_INFO.model_dump(mode="json", by_alias=True, exclude_none=True),
        CLIENT_CAPABILITIES_META_KEY: {},
    }
    body = {
        "jsonrpc": "2.0",
        "id": "secure-mcp-preflight",
        "method": "server/discover",
        "params": {"_meta": meta},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": LATEST_PROTOCOL_VERSION,
        "Mcp-Method": "server/discover",
    }
    return body, headers


async def preflight(http: httpx2.AsyncClient, provider: SecureOAuthProvider) -> None:
    """One request to the MCP endpoint so sign-in happens here, where errors are clear.

    It is the request the SDK sends first anyway (`server/discover`; a server of an earlier
    revision answers it with an error, which is fine here: only the HTTP status matters).
    """
    url = provider.context.server_url
    body, headers = discover_request()
    response = await _checked(provider, lambda: http.post(url, json=body, headers=headers))
    error = _status_error(url, response)
    if error is not None:
        raise error


class McpToolSession:
    """A ToolSession over an authorized mcp.Client, bounded in what a server can make it hold."""

    def __init__(
        self,
        client: Client,
        http: httpx2.AsyncClient,
        provider: SecureOAuthProvider,
        write: Write,
        transport: httpx2.AsyncBaseTransport | None = None,
        *,
        settings: ClientSettings | None = None,
    ) -> None:
        self._client = client
        self._http = http
        self._transport = transport
        self._provider = provider
        self._write = write
        self._settings = settings or provider.settings
        self._url = provider.context.server_url

    async def list_tools(self) -> list[Tool]:
        """The server's tools: at most `max_tool_pages` pages and `max_tools` tools, trimmed."""
        tools: list[Tool] = []
        cursor: str | None = None
        seen: set[str] = set()
        for _ in range(self._settings.max_tool_pages):
            try:
                page = await _checked(
                    self._provider, functools.partial(self._client.list_tools, cursor=cursor)
                )
            except MCPError as exc:
                raise ClientConnectError(
                    f"Could not list the tools: {quoted(str(exc))}", "server_error"
                ) from exc
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor or len(tools) > self._settings.max_tools:
                break
            if cursor in seen:
                self._write(f"Note: the server's tool list repeats itself ({self._url}).")
                break
            seen.add(cursor)
        else:
            self._write(
                f"Note: the server's tool list did not end after {self._settings.max_tool_pages} "
                "pages; the client reads no more."
            )
        return bounded_tools(tools, self._settings, self._write)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call a tool; protocol errors and oversized or late answers become `isError` results.

        A result over `max_result_chars` is cut, with a note for the user and for Claude; a
        sign-in failure raises.
        """
        try:
            result = await _checked(self._provider, lambda: self._client.call_tool(name, arguments))
        except MCPError as exc:
            return error_result(quoted(str(exc)))
        except ClientConnectError as exc:
            if exc.error not in _RESULT_FAILURES:
                raise
            return error_result(str(exc))
        trimmed, note = truncate_result(result, self._settings.max_result_chars)
        if note is not None:
            self._write(f"Note: {clean_line(name)}: {note}")
        return trimmed

    async def login(self) -> None:
        """Revoke and forget the stored tokens, then sign in again now (a new sign-in budget)."""
        self._provider.new_sign_in_budget()  # the user asked: the limit counts from here
        await self._revoke(lambda line: None)
        await preflight(self._http, self._provider)

    async def logout(self) -> None:
        """Revoke (RFC 7009) and delete the stored tokens; the next call signs in again."""
        await self._revoke(self._write)

    async def _revoke(self, write: Write) -> None:
        # A plain client: revocation must not carry the bearer token or start a sign-in.
        async with _plain(self._settings, self._transport) as plain:
            assertion = self._provider.revocation_assertion()
            await _revoke_and_delete(self._provider.storage, plain, write, assertion)
        self._provider.forget_tokens()


def error_result(message: str) -> CallToolResult:
    """A tool result saying the call failed (what Claude and `--call` see)."""
    return CallToolResult(content=[TextContent(type="text", text=message)], is_error=True)


async def _revoke_and_delete(
    storage: FileTokenStorage,
    http: httpx2.AsyncClient,
    write: Write,
    assertion: Assertion | None = None,
) -> bool:
    """Revoke every stored token set of the storage's resource, then delete them."""
    stored = storage.all_tokens()
    revoked = True
    for issuer, tokens, client in stored:
        metadata, registration = storage.server(issuer)
        client = client or registration  # the client the tokens were issued to
        outcome = await revoke_tokens(http, metadata, client, tokens, write, assertion)
        if outcome is Outcome.CLIENT_UNKNOWN and client is not None:
            storage.forget_registration(issuer, client.client_id or "")  # the next run registers
        revoked = outcome is not Outcome.NOT_REVOKED and revoked
    storage.delete_tokens()  # deleted here even when the server kept them
    if not stored:
        write(f"No stored sign-in for {storage.resource}.")
    elif revoked:
        write(f"Signed out of {storage.resource}.")
    else:
        write(
            f"Not fully signed out of {storage.resource}: the tokens were deleted here, but "
            "the authorization server did not revoke them; they stay valid until they expire."
        )
    return bool(stored)


def http_transport(settings: ClientSettings) -> httpx2.AsyncHTTPTransport:
    """The network transport of every client HTTP connection (idle ones expire early)."""
    return network_transport(settings.http_keepalive)


def _plain(
    settings: ClientSettings, transport: httpx2.AsyncBaseTransport | None
) -> httpx2.AsyncClient:
    """A plain client (no token, no sign-in), bounded like every other (a failure is a 503):
    for RFC 7009 revocation and the enterprise IdP's token exchange."""
    bounded = ReportingTransport(
        transport or http_transport(settings), lambda failure: None, bounds(settings)
    )
    return httpx2.AsyncClient(transport=bounded, timeout=30.0)


def _storage(settings: ClientSettings) -> FileTokenStorage:
    folder = machine_state_dir(settings) if settings.machine else settings.state_dir
    return FileTokenStorage(folder, resource_url_from_server_url(settings.server_url))


@asynccontextmanager
async def connect(
    settings: ClientSettings,
    *,
    write: Write = print,
    http_transport: httpx2.AsyncBaseTransport | None = None,
    opener: Opener = webbrowser.open,
    input_fn: InputFn = builtins.input,
    authorization_timeout: float = AUTHORIZATION_TIMEOUT,
) -> AsyncIterator[McpToolSession]:
    """Sign in to `settings.server_url` (or reuse stored tokens) and yield a ToolSession."""
    _quiet_sdk_logs()
    authorizer = Authorizer(
        paste=settings.paste or settings.machine,  # no listener without a browser
        open_browser=settings.open_browser,
        write=write,
        opener=opener,
        input_fn=input_fn,
        timeout=authorization_timeout,
        max_sign_ins=settings.max_sign_ins,
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(authorizer.close)
        provider = _provider(settings, authorizer, write, http_transport)
        bounded = ReportingTransport(
            http_transport or _network(settings), provider.failures.report, bounds(settings)
        )
        # above the bounds: what DPoP reads of an answer is bounded too
        transport = DpopTransport(
            bounded,
            DpopKeys(settings.state_dir),
            provider.failures.report,
            _dpop_trace(settings, write),
        )
        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                auth=provider,
                transport=transport,
                timeout=httpx2.Timeout(30.0, read=300.0),
                event_hooks={"response": [_server_failure_hook(provider)]},
            )
        )
        await preflight(http, provider)
        client = Client(
            streamable_http_client(settings.server_url, http_client=http), client_info=CLIENT_INFO
        )
        await _checked(provider, functools.partial(stack.enter_async_context, client))
        yield McpToolSession(client, http, provider, write, http_transport, settings=settings)


_network = http_transport  # `connect` has a parameter of that name


def _dpop_trace(settings: ClientSettings, write: Write) -> Callable[[str], None]:
    """`--verbose` lines for the DPoP steps."""

    def trace(line: str) -> None:
        if settings.verbose:
            write(f"[dpop] {clean_line(line)}")

    return trace


def bounds(settings: ClientSettings) -> Bounds:
    """How much one answer may cost, in bytes and seconds, by the settings."""
    return Bounds(
        mcp_url=settings.server_url,
        mcp_bytes=settings.max_mcp_response_bytes,
        mcp_seconds=settings.mcp_deadline,
        other_bytes=settings.max_oauth_response_bytes,
        other_seconds=settings.oauth_deadline,
    )


def _server_failure_hook(
    provider: SecureOAuthProvider,
) -> Callable[[httpx2.Response], Awaitable[None]]:
    """Report a 5xx from the MCP server, which the SDK would reduce to "an error response"."""
    server_url = provider.context.server_url

    async def hook(response: httpx2.Response) -> None:
        url = str(response.request.url.copy_with(query=None))
        if response.status_code >= 500 and url == server_url:
            error = _error_code(await response.aread()) if response.status_code == 503 else ""
            provider.failures.report(_server_error(server_url, response.status_code, error))

    return hook


def _provider(
    settings: ClientSettings,
    authorizer: Authorizer,
    write: Write,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> SecureOAuthProvider:
    """The OAuth provider for `settings`, or a one-line error for a bad CIMD URL."""
    parts = ProviderParts(settings, _storage(settings), authorizer, write)
    if settings.machine:
        return machine_provider(parts, lambda: _plain(settings, transport))
    try:
        return SecureOAuthProvider(parts, transport)
    except ValueError as exc:  # the SDK refuses a CIMD URL that is not https with a path
        raise ClientConnectError(
            f"--client-metadata-url must be an https URL with a path: {exc}", "invalid_client"
        ) from exc


async def logout_stored(
    settings: ClientSettings,
    write: Write = print,
    *,
    http_transport: httpx2.AsyncBaseTransport | None = None,
) -> bool:
    """`--logout` without connecting to the MCP server: revoke and delete stored tokens."""
    try:
        async with _plain(settings, http_transport) as http:
            assertion = machine_assertion(settings)
            return await _revoke_and_delete(_storage(settings), http, write, assertion)
    except StorageError as exc:
        raise ClientConnectError(str(exc), "storage_error") from exc

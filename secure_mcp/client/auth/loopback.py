"""RFC 8252 loopback redirect listener: catches `http://127.0.0.1:<port>/callback` once."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import socket
from urllib.parse import parse_qs, urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from secure_mcp.client.auth.errors import ClientConnectError

CALLBACK_PATH = "/callback"
MAX_REQUEST_BYTES = 16 * 1024
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{body}</p></body></html>
"""


def render_page(title: str, body: str) -> bytes:
    """A small HTML page; every value is escaped."""
    return _PAGE.format(title=html.escape(title), body=html.escape(body)).encode()


def query_params(query: str) -> dict[str, str]:
    """The first value of each parameter of a redirect query."""
    return {key: values[0] for key, values in parse_qs(query, keep_blank_values=True).items()}


def state_matches(params: dict[str, str], expected: str | None) -> bool:
    """RFC 6749 10.12: the response carries this sign-in's `state` (None expects nothing)."""
    if expected is None:
        return True
    state = params.get("state")
    return state is not None and hmac.compare_digest(state, expected)


def result_from_query(query: str) -> AuthorizationCodeResult:
    """The authorization response in a redirect query (RFC 6749 4.1.2, 4.1.2.1; RFC 9207)."""
    return result_from_params(query_params(query))


def result_from_params(params: dict[str, str]) -> AuthorizationCodeResult:
    """The code (and `state`, `iss`) of a response, or its error as ClientConnectError."""
    if "error" in params:
        description = params.get("error_description", "")
        raise ClientConnectError(
            f"The authorization server refused: {params['error']}"
            + (f" ({description})" if description else ""),
            error=params["error"],
        )
    if not params.get("code"):
        raise ClientConnectError("The authorization response carries no code", "invalid_request")
    return AuthorizationCodeResult(
        code=params["code"], state=params.get("state"), iss=params.get("iss")
    )


def bind_loopback_socket() -> socket.socket:
    """A socket bound to 127.0.0.1 on an ephemeral port (RFC 8252 7.3), not yet listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class LoopbackListener:
    """Serves this sign-in's redirect path on 127.0.0.1 during one authorization, then stops.

    Every sign-in listens on 127.0.0.1 on the same port (the one in the redirect URIs): the
    socket is bound again for each, and if that port has been taken meanwhile the sign-in stops
    with one line. A socket that failed to bind is never listened on (`listen()` on an unbound
    socket would pick all interfaces and a random port).
    """

    def __init__(self, sock: socket.socket | None = None) -> None:
        self._sock: socket.socket | None = sock or bind_loopback_socket()
        self.port: int = self._sock.getsockname()[1]
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[AuthorizationCodeResult] | None = None
        self._state: str | None = None
        self._path = CALLBACK_PATH
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def redirect_uri(self) -> str:
        """The redirect URI this listener answers (the base path; see `start`)."""
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    def _bound_socket(self) -> socket.socket:
        """A socket bound to 127.0.0.1 on this listener's port, not yet listening."""
        sock, self._sock = self._sock, None  # the server owns (and closes) what it listens on
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", self.port))
            except OSError as exc:
                sock.close()
                raise ClientConnectError(
                    f"Cannot listen for the sign-in on 127.0.0.1:{self.port} again "
                    f"({exc.strerror or exc}); another program took the port. Start the "
                    "client again.",
                    "listener_unavailable",
                ) from None
        if sock.getsockname() != ("127.0.0.1", self.port):  # RFC 8252 7.3: loopback only
            sock.close()
            raise ClientConnectError(
                "The sign-in listener is not bound to its redirect URI", "listener_unavailable"
            )
        return sock

    async def start(self, state: str | None = None, path: str = CALLBACK_PATH) -> None:
        """Listen (before the browser opens) for the answer carrying `state` at `path`.

        May be repeated: each sign-in listens anew, on 127.0.0.1 and the same port.
        """
        await self.stop()
        self._state = state
        self._path = path
        sock = self._bound_socket()
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=MAX_REQUEST_BYTES)

    async def wait(self, seconds: float) -> AuthorizationCodeResult:
        """The authorization response, once the browser brings it back."""
        if self._result is None:
            raise RuntimeError("listener not started")
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), seconds)
        except TimeoutError:
            raise ClientConnectError(
                f"No authorization response within {int(seconds)} seconds; try again, "
                "or use --paste",
                "access_denied",
            ) from None
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop listening (closes the socket) and drop idle connections (browsers preconnect)."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    def close(self) -> None:
        """Release the port for good."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            status, page = await self._respond(reader)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(page)}\r\nCache-Control: no-store\r\n"
                "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[str, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        method, _, rest = head.decode("latin-1").partition(" ")
        target = rest.partition(" ")[0]
        parts = urlsplit(target)
        if method != "GET" or parts.path != self._path:
            return "404 Not Found", render_page("Not found", "Nothing here.")
        if self._result is None or self._result.done():
            return "409 Conflict", render_page("Already done", "This sign-in is already complete.")
        params = query_params(parts.query)
        # RFC 6749 10.12: state first. A response (error or code) for another sign-in, e.g. a
        # local page forging `?error=`, is refused and ignored; the real one may still come.
        if not state_matches(params, self._state):
            return "400 Bad Request", render_page(
                "Not this sign-in",
                "This answer does not belong to the sign-in in progress; it was ignored.",
            )
        try:
            result = result_from_params(params)
        except ClientConnectError as exc:
            self._result.set_exception(exc)
            return "400 Bad Request", render_page(
                "Sign-in failed", f"{exc} You can close this tab."
            )
        self._result.set_result(result)
        return "200 OK", render_page(
            "Signed in", "You can close this tab and return to the terminal."
        )

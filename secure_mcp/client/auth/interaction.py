"""The user's part of the authorization: open the browser, then catch or read the redirect."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from secure_mcp.client.auth.browser import Opener, open_in_browser
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.loopback import CALLBACK_PATH, LoopbackListener, bind_loopback_socket
from secure_mcp.client.auth.paste import PROMPT, InputFn, read_pasted
from secure_mcp.client.terminal import clean_line

AUTHORIZATION_TIMEOUT = 300.0
MAX_SIGN_INS = 3


def sign_in_limit(limit: int) -> ClientConnectError:
    """The failure that ends a session whose server keeps asking for sign-ins."""
    return ClientConnectError(
        f"Stopped: this session already signed in {limit} times and the server still asks for "
        "a sign-in; it may be refusing every token. Check the server, then start the client "
        "again.",
        "sign_in_limit",
        fatal=True,
    )


def duration(seconds: float) -> str:
    """`seconds` for people: "5 minutes", "1 minute", "90 seconds"."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _unused_loopback_port() -> int:
    """A port for the `--paste` redirect URI: nothing listens there, the user copies the URL."""
    with bind_loopback_socket() as sock:
        return int(sock.getsockname()[1])


class Authorizer:
    """Sends the user to the authorization URL and brings the code back (RFC 8252)."""

    def __init__(
        self,
        *,
        paste: bool,
        open_browser: bool,
        write: Callable[[str], None],
        opener: Opener,
        input_fn: InputFn,
        timeout: float = AUTHORIZATION_TIMEOUT,
        max_sign_ins: int = MAX_SIGN_INS,
    ) -> None:
        self._paste = paste
        self._open_browser = open_browser
        self._write = write
        self._opener = opener
        self._input_fn = input_fn
        self._timeout = timeout
        self._max_sign_ins = max_sign_ins
        self.sign_ins = 0  # sign-ins started in this session (`/login` starts the count again)
        self._listener: LoopbackListener | None = None
        if paste:
            self.redirect_uri = f"http://127.0.0.1:{_unused_loopback_port()}{CALLBACK_PATH}"
        else:
            self._listener = LoopbackListener()
            self.redirect_uri = self._listener.redirect_uri
        self._state = ""
        self._path = CALLBACK_PATH
        self._issuer: str | None = None
        self._use_paste = paste

    def redirect_uri_for(self, issuer: str) -> str:
        """This client's redirect URI for the authorization server `issuer` (RFC 9700 4.4.2.2).

        Mix-up defence that does not need `iss`: each authorization server gets a path of its
        own, registered with it alone, so a server that sends the user to another server's
        authorization endpoint gets a redirect URI that server never registered (refused
        there), and an answer arriving on another path is not this sign-in's.
        """
        tag = hashlib.sha256(issuer.rstrip("/").encode()).hexdigest()[:16]
        return f"{self.redirect_uri}/{tag}"

    async def redirect(self, url: str, issuer: str | None) -> None:
        """Start listening, then show the URL (always) and open the browser (unless told not to).

        At most `max_sign_ins` per session: a server that rejects every token would otherwise
        have the browser opened again at every request.
        """
        if self.sign_ins >= self._max_sign_ins:
            raise sign_in_limit(self._max_sign_ins)
        self.sign_ins += 1
        query = parse_qs(urlsplit(url).query)
        self._state = query.get("state", [""])[0]
        self._path = urlsplit(query.get("redirect_uri", [self.redirect_uri])[0]).path
        self._issuer = issuer
        self._use_paste = self._paste
        if self._listener is not None:  # RFC 8252 7.3: before the browser opens
            await self._listener.start(self._state, self._path)
        self._write(f"Sign in to continue. Open this URL in your browser:\n  {clean_line(url)}")
        if self._paste:
            self._write("After signing in, copy the address of the page you land on.")
            return
        if self._open_browser and not open_in_browser(url, self._opener):
            self._write("Could not open a browser here; paste the redirect URL instead.")
            self._use_paste = True

    async def callback(self) -> AuthorizationCodeResult:
        """The authorization response: from the loopback listener, or pasted."""
        if self._use_paste or self._listener is None:
            if self._listener is not None:
                await self._listener.stop()
            self._write(PROMPT)  # on the progress stream: stdout stays for results
            return await read_pasted(
                self._input_fn, state=self._state, issuer=self._issuer, path=self._path
            )
        self._write(
            f"Waiting up to {duration(self._timeout)} for the browser to come back "
            "(Ctrl-C cancels)..."
        )
        return await self._listener.wait(self._timeout)

    def close(self) -> None:
        """Release the loopback port."""
        if self._listener is not None:
            self._listener.close()

"""The user's part of the authorization: open the browser, then catch or read the redirect."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from secure_mcp.client.auth.browser import Opener, open_in_browser
from secure_mcp.client.auth.loopback import CALLBACK_PATH, LoopbackListener, bind_loopback_socket
from secure_mcp.client.auth.paste import PROMPT, InputFn, read_pasted

AUTHORIZATION_TIMEOUT = 300.0


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
    ) -> None:
        self._paste = paste
        self._open_browser = open_browser
        self._write = write
        self._opener = opener
        self._input_fn = input_fn
        self._timeout = timeout
        self._listener: LoopbackListener | None = None
        if paste:
            self.redirect_uri = f"http://127.0.0.1:{_unused_loopback_port()}{CALLBACK_PATH}"
        else:
            self._listener = LoopbackListener()
            self.redirect_uri = self._listener.redirect_uri
        self._state = ""
        self._issuer: str | None = None
        self._use_paste = paste

    async def redirect(self, url: str, issuer: str | None) -> None:
        """Start listening, then show the URL (always) and open the browser (unless told not to)."""
        self._state = parse_qs(urlsplit(url).query).get("state", [""])[0]
        self._issuer = issuer
        self._use_paste = self._paste
        if self._listener is not None:
            await self._listener.start(self._state)  # RFC 8252 7.3: before the browser opens
        self._write(f"Sign in to continue. Open this URL in your browser:\n  {url}")
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
            return await read_pasted(self._input_fn, state=self._state, issuer=self._issuer)
        self._write("Waiting for the browser to come back...")
        return await self._listener.wait(self._timeout)

    def close(self) -> None:
        """Release the loopback port."""
        if self._listener is not None:
            self._listener.close()

"""`--paste`: accept the whole redirect URL (or just the code) typed back into the terminal."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from mcp.shared.auth import AuthorizationCodeResult

from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.loopback import query_params, result_from_params, state_matches
from secure_mcp.client.threaded_input import read_in_thread

InputFn = Callable[[str], str]
PROMPT = "Paste the redirect URL (or the code) here and press Enter:"


def parse_pasted(
    text: str, *, state: str, issuer: str | None, path: str | None = None
) -> AuthorizationCodeResult:
    """The authorization response in pasted text.

    A whole redirect URL must carry this sign-in's `state` before anything else in it counts,
    an error included (RFC 6749 10.12); the provider checks `state` and `iss` again. A bare
    code carries neither: the user typed it into their own terminal, so there is no redirect to
    forge, and PKCE (RFC 7636) still binds the code to this client's verifier. A whole URL must
    also arrive on `path`, the redirect URI of this sign-in's authorization server
    (RFC 9700 4.4.2.2).
    """
    text = text.strip()
    if not text:
        raise ClientConnectError("Nothing was pasted; sign-in cancelled", "access_denied")
    if "?" in text or "://" in text:
        parts = urlsplit(text)
        params = query_params(parts.query)
        if "://" in text and path is not None and parts.path != path:
            raise ClientConnectError(
                f"The pasted URL is not this sign-in's redirect address (its path is not "
                f"{path}); sign in again and paste the address you land on.",
                "invalid_request",
            )
        if not state_matches(params, state):
            raise ClientConnectError(
                "The pasted URL is not from this sign-in (its state does not match); "
                "sign in again and paste the address you land on.",
                "invalid_request",
            )
        return result_from_params(params)
    if any(char.isspace() for char in text) or "&" in text or "=" in text:
        raise ClientConnectError(
            "That does not look like a code or a redirect URL", "invalid_request"
        )
    return AuthorizationCodeResult(code=text, state=state, iss=issuer)


async def read_line(input_fn: InputFn) -> str:
    """One line from `input_fn` (empty at the end of input), without making Ctrl-C wait."""

    def read() -> str:
        try:
            return input_fn("")
        except (EOFError, OSError, ValueError):  # end of input, or stdin closed
            return ""

    return await read_in_thread(read, "paste-reader")


async def read_pasted(
    input_fn: InputFn, *, state: str, issuer: str | None, path: str | None = None
) -> AuthorizationCodeResult:
    """Read one line (the caller showed the prompt) and parse it; end of input cancels."""
    text = await read_line(input_fn)
    return parse_pasted(text, state=state, issuer=issuer, path=path)

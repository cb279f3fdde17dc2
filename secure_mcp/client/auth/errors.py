"""The one error type for expected connection and authorization failures."""

from __future__ import annotations


class ClientConnectError(Exception):
    """An expected failure: `str(exc)` is a one-line, user-facing message (no traceback).

    `fatal` failures end the session (the chat does not go on after them), e.g. the sign-in
    limit: a server that rejects every token must not get the browser opened again and again.
    """

    def __init__(
        self, message: str, error: str = "connection_failed", *, fatal: bool = False
    ) -> None:
        super().__init__(message)
        self.error = error  # an OAuth error code when the failure is one (RFC 6749 5.2)
        self.fatal = fatal

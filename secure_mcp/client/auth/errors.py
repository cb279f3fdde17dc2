"""The one error type for expected connection and authorization failures, and their channel."""

from __future__ import annotations

from collections.abc import Callable


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


Report = Callable[[ClientConnectError], None]  # a transport's or a hook's Failures.report


class Failures:
    """The side channel of a sign-in: the first expected failure while one request is sent.

    The SDK's auth flow must not raise (the caller would get a dead transport instead of the
    server's answer) and the transports answer 503 instead of raising; so the provider, the
    transports and the response hook report here, and connection.py takes the failure before
    and after each request and raises it as one line.
    """

    def __init__(self) -> None:
        self._first: Exception | None = None

    @property
    def pending(self) -> bool:
        """True when a failure was reported and not yet taken."""
        return self._first is not None

    def report(self, failure: Exception) -> None:
        """Keep `failure` unless one is kept already: the first one is the cause."""
        self._first = self._first or failure

    def take(self) -> Exception | None:
        """The kept failure, if any, and forget it."""
        failure, self._first = self._first, None
        return failure

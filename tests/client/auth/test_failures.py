"""The sign-in's failure channel: the first failure reported is the one taken, then forgotten."""

from __future__ import annotations

from secure_mcp.client.auth.errors import ClientConnectError, Failures


def test_the_first_failure_is_taken_once() -> None:
    failures = Failures()
    assert not failures.pending
    assert failures.take() is None
    first = ClientConnectError("the server is unreachable")
    failures.report(first)
    failures.report(ClientConnectError("a later consequence"))
    assert failures.pending
    assert failures.take() is first
    assert not failures.pending
    assert failures.take() is None

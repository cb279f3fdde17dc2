"""The audit log: one JSON object per line for every security decision (`--audit-log`).

Sign-ins (success, failure, throttled), consent decisions, codes issued, tokens issued, refreshed
and revoked, reuse of a code or refresh token (family revoked), registrations. Each line has
`time` (UTC, RFC 3339), `event`, `client_id`, `user`, `resource` and `source` (the TCP peer),
plus the event's own facts; never a token, code, secret or password: callers pass only the
fields below, and `record` refuses any other name.

The file is opened once, `O_APPEND`, created 0600, never through a symbolic link, and refused
when another user owns it or others may write to it (`private_files.open_private`). Every line
is one `write(2)` on an `O_APPEND` descriptor, so lines from several instances (each with its own
file, or even one shared local file) never interleave within a line.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request

from secure_mcp.common.private_files import open_private

STDOUT = "-"
# Every field a line may carry besides time and event: nothing here can hold a secret.
FIELDS = frozenset(
    {
        "client_id",
        "user",
        "resource",
        "source",
        "scope",
        "grant_type",
        "token_type",
        "remembered",
        "reason",
        "auth_method",
        "family",
    }
)


class AuditLog:
    """Writes audit lines to a file descriptor, to stdout (`-`), or nowhere (`None`)."""

    def __init__(self, target: Path | str | None) -> None:
        self.target = target
        self._fd: int | None = None
        self._write: Callable[[str], None] | None = None
        if target == STDOUT:
            self._write = _to_stdout
        elif target is not None:
            # UnsafePathError (an OSError) for another user's or a shared-writable file
            fd = self._fd = open_private(Path(target), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            self._write = lambda line: _to_fd(fd, line)

    @property
    def enabled(self) -> bool:
        """True when lines are written somewhere."""
        return self._write is not None

    def close(self) -> None:
        """Close the file (stdout is left open)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._write = None

    def record(self, event: str, request: Request | None = None, **fields: Any) -> None:
        """Write one line; `source` comes from `request`. Unknown field names are a bug."""
        write = self._write
        if write is None:
            return
        unknown = set(fields) - FIELDS
        if unknown:
            raise ValueError(f"not an audit field: {sorted(unknown)}")
        line: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "client_id": None,
            "user": None,
            "resource": None,
            "source": request.client.host if request is not None and request.client else None,
        }
        line.update(fields)
        write(json.dumps(line, ensure_ascii=True, separators=(",", ":")) + "\n")


def _to_fd(fd: int, line: str) -> None:
    """One `write(2)` on the O_APPEND descriptor: the whole line lands at the end, unmixed."""
    os.write(fd, line.encode("ascii"))


def _to_stdout(line: str) -> None:
    """Print the line at once (stdout may be a pipe to a log collector)."""
    sys.stdout.write(line)
    sys.stdout.flush()


NO_AUDIT = AuditLog(None)

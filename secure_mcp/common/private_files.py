"""Private (mode 0600) files written atomically: nothing is ever half-written.

Also the trust check for state folders and the files read from them: a folder another user can
write to (or owns) may hold files planted by that user, so it is refused, never silently used.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UnsafePathError(OSError):
    """A folder or file is owned by another user or writable by others; the message says which."""


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) with mode 0700 when missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _check_owned_and_unshared(path: Path, st: os.stat_result, what: str) -> None:
    """UnsafePathError unless `st` belongs to this user and no one else may write to it."""
    if st.st_uid != os.geteuid():
        raise UnsafePathError(
            f"{what} {path} belongs to another user (uid {st.st_uid}), not to you "
            f"(uid {os.geteuid()}): it could hold files planted by that user; use your own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & SHARED_WRITE:
        raise UnsafePathError(
            f"{what} {path} is writable by other users (mode {mode:04o}): they could plant "
            f"files there; check its contents, then run `chmod go-w {path}`, or use another one"
        )


def check_private_dir(path: Path, *, create: bool = True) -> None:
    """`path` is a folder of ours that no one else may write to; created 0700 when missing.

    Raises UnsafePathError (an OSError) with one line naming the folder and the fix, or
    FileNotFoundError when it is missing and `create` is False.
    """
    if create:
        ensure_private_dir(path)
    st = path.stat()  # a symlink is judged by the folder it points to
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(f"{path} is not a folder")
    _check_owned_and_unshared(path, st, "the folder")


def check_private_file(path: Path) -> None:
    """When `path` exists: a file of ours that no one else may write to (UnsafePathError)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    _check_owned_and_unshared(path, st, "the file")


def write_private_text(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; the file is created with mode 0600."""
    ensure_private_dir(path.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_private_json(path: Path, data: Any) -> None:
    """Replace `path` with `data` as JSON, atomically, mode 0600."""
    write_private_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """The JSON content of `path`, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return json.loads(text)


def _checked_fd(fd: int, path: Path) -> int:
    """`fd` (open on `path`) when it is a regular file of ours no one else may write to."""
    try:
        st = os.fstat(fd)  # the file actually opened, not whatever the name points to now
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(f"the file {path} is not a regular file")
        _check_owned_and_unshared(path, st, "the file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private(path: Path, flags: int) -> int:
    """`os.open` for a private file: never through a symbolic link (O_NOFOLLOW), mode 0600.

    The opened file is checked as `check_private_file` checks a name (UnsafePathError).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePathError(f"the file {path} is a symbolic link; not followed") from None
        raise
    return _checked_fd(fd, path)


def read_owner_only(path: Path, limit: int, what: str) -> bytes:
    """At most `limit` + 1 bytes of the secret file `path`, which only this user may read (like
    ssh's keys): opened as `open_private`; UnsafePathError (an OSError) when others may read it."""
    fd = open_private(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            raise UnsafePathError(
                f"the {what} file {path} is readable by other users; run `chmod 600 {path}`"
            )
        return handle.read(limit + 1)


def read_private_json(path: Path) -> Any:
    """The JSON content of the private file `path` (opened as `open_private`), or None."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))

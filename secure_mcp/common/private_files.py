"""Private (mode 0600) files written atomically: nothing is ever half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) with mode 0700 when missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


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

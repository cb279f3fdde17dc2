"""External tools the tests use: skipped without them, except under CI, where missing fails."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def under_ci() -> bool:
    """True when running in CI (`CI=true`), where every tool must be present."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(found: str | None, what: str, how: str) -> str:
    """Return `found`, or skip the test (fail under CI) naming `what` and `how` to install it."""
    if found:
        return found
    message = f"{what} is not installed ({how})"
    if under_ci():
        pytest.fail(f"{message}; CI must install it")
    pytest.skip(message)


def chromium_path() -> str:
    """Path of Debian's chromium, or skip/fail as `require_tool` does."""
    found = next((p for p in CHROMIUM_CANDIDATES if os.path.exists(p)), None)
    found = found or shutil.which("chromium")
    return require_tool(found, "chromium", "apt-get install -y chromium")

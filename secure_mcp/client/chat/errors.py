"""The chat side's expected failures, importable without the Claude SDK."""

from __future__ import annotations


class ClaudeError(Exception):
    """A failed Claude request; `str(exc)` is a one-line message for the user."""

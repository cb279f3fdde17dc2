"""Open the authorization URL in the user's browser: http(s) only, never through a shell."""

from __future__ import annotations

import webbrowser
from collections.abc import Callable
from urllib.parse import urlsplit

Opener = Callable[[str], bool]


def open_in_browser(url: str, opener: Opener = webbrowser.open) -> bool:
    """Open `url` when it is http or https; False when refused or no browser could be opened."""
    if urlsplit(url).scheme.lower() not in {"http", "https"}:
        return False
    try:
        return bool(opener(url))
    except webbrowser.Error:
        return False

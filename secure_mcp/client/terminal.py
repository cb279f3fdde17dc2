"""The terminal belongs to the user: every externally supplied string is made inert here.

Servers, their authorization servers and Claude supply text the client shows: tool names,
descriptions, results, answers, error descriptions, URLs. A control character in that text is
an instruction to the terminal (ECMA-48): ESC and the 8-bit C1 introducers start CSI, OSC (title,
clipboard via OSC 52, links via OSC 8), DCS, SOS, PM and APC sequences; CR, BS and the cursor
sequences overwrite what is already on the screen; bidi controls reorder what is shown (Trojan
Source, CVE-2021-42574). `clean` makes every such character visible as a JSON-style `\\uXXXX`
escape, so no sequence can start, whatever follows it, and JSON output stays valid JSON with the
same value. Only the client's own `Styled` text is ever drawn with escape sequences.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import TextIO

# C0 controls except TAB and LF, and DEL. LF and TAB are layout, kept by `clean`.
_ASCII_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_WHITESPACE_CONTROLS = re.compile(r"[\t\n]")
# Joiners shape emoji and scripts; they cannot move the cursor or reorder text.
_HARMLESS_FORMAT = {"\u200c", "\u200d"}
_STYLES = {"bold": "\x1b[1m"}
_RESET = "\x1b[0m"


def visible(char: str) -> str:
    """`char` as a JSON string escape (`\\u001b`; a surrogate pair above U+FFFF)."""
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def unsafe(char: str) -> bool:
    """A character that is an instruction to the terminal, or invisible and misleading.

    Controls (C0, DEL, C1: Cc), unpaired surrogates (Cs, which also cannot be encoded), line and
    paragraph separators (Zl, Zp) and format characters (Cf: bidi embeddings, overrides and
    isolates, zero-width and tag characters) except the two joiners.
    """
    category = unicodedata.category(char)
    if category == "Cf":
        return char not in _HARMLESS_FORMAT
    return category in ("Cc", "Cs", "Zl", "Zp")


def _escape_match(match: re.Match[str]) -> str:
    return visible(match.group())


def _escape_if_unsafe(match: re.Match[str]) -> str:
    char = match.group()
    return visible(char) if unsafe(char) else char


def clean(text: str) -> str:
    """`text` with every unsafe character made visible; newlines and tabs are kept.

    CRLF becomes LF; any other CR is made visible (a bare CR returns to the start of the line,
    the oldest way to overwrite what was shown).
    """
    text = text.replace("\r\n", "\n")
    if not text.isascii():
        text = _NON_ASCII.sub(_escape_if_unsafe, text)
    return _ASCII_CONTROLS.sub(_escape_match, text)


def clean_line(text: str) -> str:
    """`text` for one line of output: `clean`, with newlines and tabs turned into spaces."""
    return _WHITESPACE_CONTROLS.sub(" ", clean(text))


class Styled(str):
    """Text the client itself styles (e.g. the tool-call line): the only text drawn with SGR.

    Made only by the client's own rendering code; text from anywhere else is a plain `str`,
    and a `Styled` joined with anything becomes a plain `str` again.
    """

    style: str

    def __new__(cls, text: str, style: str = "bold") -> Styled:
        """`text`, to be drawn in `style` (a key of the styles table) on a color terminal."""
        obj = super().__new__(cls, text)
        obj.style = style
        return obj


def color_wanted(stream: TextIO, env: Mapping[str, str]) -> bool:
    """Style only a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not env.get("NO_COLOR")


class Terminal:
    """A `Write` to a text stream: everything is cleaned; only `Styled` text gets its style."""

    def __init__(self, stream: TextIO | None = None, *, color: bool = False) -> None:
        self._stream = stream
        self.color = color

    @property
    def stream(self) -> TextIO:
        """The stream written to (sys.stdout at the time of writing, unless one was given)."""
        return self._stream if self._stream is not None else sys.stdout

    def render(self, text: str) -> str:
        """What `text` becomes on this terminal."""
        cleaned = clean(text)
        if self.color and isinstance(text, Styled) and cleaned:
            return f"{_STYLES[text.style]}{cleaned}{_RESET}"
        return cleaned

    def __call__(self, text: str) -> None:
        """Write `text` (cleaned) and flush, so streamed answers appear as they arrive."""
        self.stream.write(self.render(text))
        self.stream.flush()

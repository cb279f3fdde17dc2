"""What the consent page may show of client-supplied text: nothing invisible, hosts as ASCII.

A client name with a right-to-left override ("Good\\u202eevil" reads "Goodlive") or zero-width
characters can impersonate another application, and a redirect host spelled in Cyrillic
letters can look exactly like a familiar Latin one (its xn-- form cannot). Registration and
client ID metadata documents refuse such text (`invisible_characters`); what is already stored
is cleaned again when shown (`shown_text`, `shown_host`).
"""

from __future__ import annotations

import unicodedata

# Unicode categories that draw nothing or reorder what follows: controls, format characters
# (bidirectional embeddings, overrides and isolates, zero-width space/joiners, soft hyphen, tag
# characters), line and paragraph separators, surrogates, private use and unassigned code points.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and marks that render as blank space, and variation selectors.
INVISIBLE_CHARACTERS = frozenset(
    {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0}
    | set(range(0x180B, 0x1810))
    | set(range(0xFE00, 0xFE10))
    | set(range(0xE0100, 0xE01F0))
)


def is_invisible(ch: str) -> bool:
    """True for a character that shows nothing, changes text direction, or is not a plain space.

    Every space separator but U+0020 counts: wide and no-break spaces can push text out of view.
    """
    category = unicodedata.category(ch)
    if category == "Zs":
        return ch != " "
    return category in INVISIBLE_CATEGORIES or ord(ch) in INVISIBLE_CHARACTERS


def invisible_characters(value: str) -> list[str]:
    """The invisible characters of `value` as U+XXXX names, in order, without repeats."""
    found = (f"U+{ord(ch):04X}" for ch in value if is_invisible(ch))
    return list(dict.fromkeys(found))


def shown_text(value: str) -> str:
    """`value` without invisible characters (a stored name from before the registration check)."""
    return "".join(ch for ch in value if not is_invisible(ch))


def shown_host(netloc: str) -> str:
    """A host (with port) as shown to the user: a non-ASCII name in its `xn--` (IDNA) form."""
    if netloc.isascii():
        return netloc
    host, sep, port = netloc.rpartition(":") if netloc.count(":") == 1 else (netloc, "", "")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:  # not encodable: show every character escaped instead
        ascii_host = host.encode("ascii", "backslashreplace").decode("ascii")
    return ascii_host + sep + port

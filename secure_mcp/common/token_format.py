"""Recognisable tokens: a type prefix and a CRC32 checksum, so garbage is refused for free.

`smcp_at_<43 random URL-safe characters>_<CRC32 of everything before it, 8 hex digits>` for
access tokens, `smcp_rt_...` for refresh tokens (as GitHub's `ghp_...` tokens). The randomness is
`secrets.token_urlsafe(32)`, 256 bits, as before. The checksum is public and proves nothing about
who issued a token: it only lets a resource server drop typos, truncations, old-format and random
tokens without asking the authorization server, and lets secret scanners recognise leaked tokens.

JSON Web Tokens (RFC 9068 access tokens, `--access-token-format jwt`) are told apart by their
shape: three base64url parts joined by two dots (`looks_like_jwt`); no opaque token of ours has
a dot.
"""

from __future__ import annotations

import re
import secrets
import zlib

ACCESS_PREFIX = "smcp_at_"
REFRESH_PREFIX = "smcp_rt_"
_SHAPE = re.compile(r"smcp_[a-z]{2}_[A-Za-z0-9_-]{43}_[0-9a-f]{8}")  # 43: token_urlsafe(32)


def checksum(text: str) -> str:
    """CRC32 of `text` as 8 lowercase hex digits."""
    return f"{zlib.crc32(text.encode('ascii')):08x}"


def assemble(prefix: str, body: str) -> str:
    """The token made of `prefix`, `body` and their checksum."""
    return f"{prefix}{body}_{checksum(prefix + body)}"


def mint(prefix: str) -> str:
    """A new random token of the kind `prefix` names."""
    return assemble(prefix, secrets.token_urlsafe(32))


def well_formed(token: str, prefix: str) -> bool:
    """True when `token` has the shape of a `prefix` token and its checksum is right."""
    if not token.startswith(prefix) or not _SHAPE.fullmatch(token):
        return False
    return checksum(token[:-9]) == token[-8:]  # public data: no constant-time compare needed


def looks_like_jwt(token: str) -> bool:
    """True when `token` has the shape of a JWS in compact form: three non-empty parts joined by
    dots (RFC 7515 7.1). Only the shape: the parts are decoded, strictly, when it is checked."""
    return token.count(".") == 2 and ".." not in token and token[0] != "." and token[-1] != "."

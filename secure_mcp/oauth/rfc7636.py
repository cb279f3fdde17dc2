"""RFC 7636 Proof Key for Code Exchange, S256 only (OAuth 2.1 4.1.1, RFC 9700 2.1.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from secure_mcp.oauth.errors import InvalidGrant, InvalidRequest

VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 4.1
CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")  # base64url(SHA-256) without padding


def check_challenge(challenge: str | None, method: str | None) -> str:
    """The code_challenge, or InvalidRequest when missing, not S256 or malformed."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE)")
    if method != "S256":  # RFC 9700 2.1.1: plain is not accepted; the method must be given
        raise InvalidRequest("code_challenge_method must be S256")
    if not CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be 43 base64url characters")
    return challenge


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify(verifier: str | None, challenge: str) -> None:
    """RFC 7636 4.6: the verifier must hash to the challenge; compared in constant time."""
    if not verifier:
        raise InvalidRequest("code_verifier is required")
    if not VERIFIER.match(verifier):
        raise InvalidRequest("code_verifier must be 43-128 unreserved characters")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")

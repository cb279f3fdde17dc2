"""RFC 6750 section 3.1 errors of the protected resource, each carrying its OAuth code."""

from __future__ import annotations

import math


class AuthError(Exception):
    """A refused request; `error` is the RFC 6750 section 3.1 code ("" for none)."""

    error = ""
    status = 401
    description = "This MCP server requires an OAuth 2.1 bearer token in the Authorization header."
    retry_after: int | None = None  # seconds; set for "come back later" answers (no challenge)

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        if description:
            self.description = description


class MalformedRequestError(AuthError):
    """RFC 6750 3.1 invalid_request: a malformed request (token in the query, bad header)."""

    error = "invalid_request"
    status = 400


class MissingTokenError(AuthError):
    """RFC 6750 3.1: no authentication information at all, so no error code."""


class InvalidTokenError(AuthError):
    """RFC 6750 3.1: expired, revoked, malformed or issued for another resource."""

    error = "invalid_token"
    description = "The access token is invalid, expired, revoked or not issued for this server."


class InsufficientScopeError(AuthError):
    """RFC 6750 3.1: the token lacks a scope this resource needs."""

    error = "insufficient_scope"
    status = 403
    description = "The access token does not carry the scope this server requires."


class AuthServerUnavailableError(AuthError):
    """The authorization server cannot answer now: 503, not 401 (no pointless re-login)."""

    error = "temporarily_unavailable"
    status = 503
    description = "The authorization server cannot be reached to check the token; retry shortly."
    retry_after = 5


class IntrospectionRefusedError(AuthServerUnavailableError):
    """The authorization server answers, but refuses this server's introspection credentials.

    Its own code, so a client can tell "cannot reach the authorization server" from "this
    server cannot check tokens" (a problem of the MCP server, not of the user's sign-in).
    """

    error = "introspection_refused"
    description = (
        "This server cannot check tokens: the authorization server refuses its introspection "
        "credentials."
    )


class TooManyFailedTokensError(AuthError):
    """This source presented too many invalid tokens: 429, and no introspection for a while."""

    error = "too_many_requests"
    status = 429
    description = "Too many invalid access tokens from this address; retry later."

    def __init__(self, wait: float) -> None:
        super().__init__()
        self.retry_after = max(1, math.ceil(wait))


class InvalidDpopProofError(AuthError):
    """RFC 9449 7.1: the DPoP proof is missing, malformed, replayed or not for this request."""

    error = "invalid_dpop_proof"
    description = "The DPoP proof is invalid."


class UseDpopNonceError(AuthError):
    """RFC 9449 9: the proof must carry this server's nonce (sent in `DPoP-Nonce`)."""

    error = "use_dpop_nonce"
    description = "Send a DPoP proof with this server's nonce (DPoP-Nonce)."

    def __init__(self, nonce: str) -> None:
        super().__init__()
        self.nonce = nonce


class ProofCacheFullError(AuthError):
    """Too many proofs within the replay window to remember another: 503, retry shortly."""

    error = "temporarily_unavailable"
    status = 503
    description = "The server is busy checking DPoP proofs; retry shortly."
    retry_after = 1

"""OAuth error classes, each carrying its error code (RFC 6749 5.2, 7591 3.2.2, 8707 2)."""

from __future__ import annotations

from typing import ClassVar

from starlette.responses import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OAuthError(Exception):
    """An OAuth error answer: `error` code, HTTP status and a human description."""

    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400

    def __init__(self, description: str) -> None:
        # RFC 6749 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E, and it often quotes
        # client input, so anything outside that set becomes "?".
        safe = "".join(ch if " " <= ch <= "~" and ch not in '"\\' else "?" for ch in description)
        super().__init__(safe)
        self.description = safe

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """The JSON error body of RFC 6749 5.2, never cached."""
        body = {"error": self.error, "error_description": self.description}
        return JSONResponse(
            body, status_code=self.status_code, headers={**NO_STORE, **(headers or {})}
        )


class InvalidRequest(OAuthError):
    """A parameter is missing, duplicated, malformed or unsupported."""

    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 5.2): 401, with a Basic challenge when used."""

    error = "invalid_client"
    status_code = 401

    def __init__(self, description: str, *, used_basic: bool = True) -> None:
        super().__init__(description)
        self.used_basic = used_basic

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """401, with `WWW-Authenticate: Basic` when the client used HTTP auth (RFC 6749 5.2)."""
        challenge = {"WWW-Authenticate": 'Basic realm="oauth"'} if self.used_basic else {}
        return super().response(headers={**challenge, **(headers or {})})


class InvalidGrant(OAuthError):
    """The code or refresh token is invalid, expired, revoked, reused or not this client's."""

    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    """The client may not use this grant type."""

    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    """Only authorization_code and refresh_token are supported."""

    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    """Only response_type=code is supported."""

    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    """A scope is unknown, or wider than what was granted."""

    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """RFC 8707 2: the resource is missing, unknown, malformed or not the authorized one."""

    error = "invalid_target"


class AccessDenied(OAuthError):
    """The user denied the request."""

    error = "access_denied"
    status_code = 403


class InvalidRedirectUri(OAuthError):
    """RFC 7591 3.2.2: a redirect URI is not acceptable."""

    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    """RFC 7591 3.2.2: a metadata field is invalid."""

    error = "invalid_client_metadata"


class InvalidInitialAccessToken(OAuthError):
    """RFC 7591 3 with RFC 6750 3.1: a wrong initial access token on POST /register."""

    error = "invalid_token"
    status_code = 401

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """401 with the RFC 6750 3 challenge naming the error."""
        challenge = f'Bearer realm="register", error="{self.error}"'
        return super().response(headers={"WWW-Authenticate": challenge, **(headers or {})})


class InitialAccessTokenRequired(InvalidInitialAccessToken):
    """RFC 6750 3.1: no token was sent where one is required; the challenge has no error code."""

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """401 with a bare Bearer challenge."""
        return OAuthError.response(
            self, headers={"WWW-Authenticate": 'Bearer realm="register"', **(headers or {})}
        )


class InvalidClientDocument(InvalidClient):
    """A client ID metadata document is unusable: an error page at /authorize, 401 at /token."""

    def __init__(self, description: str) -> None:
        super().__init__(description, used_basic=False)


class InvalidDpopProof(OAuthError):
    """RFC 9449 5, 7.1: the DPoP proof is missing where required, malformed or replayed."""

    error = "invalid_dpop_proof"


class UseDpopNonce(OAuthError):
    """RFC 9449 8: the proof must carry the server's nonce, sent in the `DPoP-Nonce` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description)
        self.nonce = nonce

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """400 with the nonce to use (RFC 9449 8.1)."""
        return super().response(headers={"DPoP-Nonce": self.nonce, **(headers or {})})

"""Clients without a browser: tokens from the token endpoint alone, asked for again when needed.

`--client-credentials` (OAuth 2.1 4.2) authenticates with the client secret (HTTP Basic,
RFC 6749 2.3.1) or a key (private_key_jwt, RFC 7523 2.2). The credentials go only to the
authorization server named by `--client-issuer`, checked like a pre-registered client's; the
tokens live in a state folder of their own, so a machine run never uses a person's sign-in.
There is no refresh token: a token about to expire is replaced by asking again.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata
from typing_extensions import override

from secure_mcp.client.auth.binding import require_https
from secure_mcp.client.auth.errors import ClientConnectError
from secure_mcp.client.auth.provider import ProviderParts, SecureOAuthProvider
from secure_mcp.client.auth.steps import step_of
from secure_mcp.client.settings import ClientSettings
from secure_mcp.common.private_files import read_owner_only

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 2.2
ASSERTION_LIFETIME = 60  # seconds: long enough for one token request
MAX_KEY_FILE_BYTES = 64 * 1024
MIN_RSA_BITS = 2048
CLIENT_CREDENTIALS = "client_credentials"
INVALID = "invalid_client"  # the error code of a key that cannot be used


@dataclass(frozen=True)
class SigningKey:
    """A private key for client assertions and the algorithm it signs with."""

    key: ECKey | OKPKey | RSAKey
    alg: str

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, key=[secure])"


def _algorithm(key: ECKey | OKPKey | RSAKey) -> str:
    """The JWS algorithm for `key`: ES256/ES384 by curve, Ed25519, RS256 for RSA."""
    members = key.as_dict(private=False)
    if isinstance(key, RSAKey):
        if len(str(members["n"])) * 6 < MIN_RSA_BITS:
            raise ValueError(f"an RSA key must have at least {MIN_RSA_BITS} bits")
        return "RS256"
    algorithms = {"P-256": "ES256", "P-384": "ES384", "Ed25519": "Ed25519"}  # RFC 9864
    curve = str(members.get("crv"))
    if curve not in algorithms:
        raise ValueError(f"the curve {curve} is not supported (P-256, P-384 or Ed25519)")
    return algorithms[curve]


def load_signing_key(path: Path) -> SigningKey:
    """The PEM private key in `path`: a file of ours that no one else may read (like ssh).

    Raises ClientConnectError with one line naming the file and the problem.
    """
    try:
        pem = read_owner_only(path, MAX_KEY_FILE_BYTES, "key")
    except OSError as exc:
        raise ClientConnectError(
            f"Cannot use the private key file: {exc}", "invalid_client"
        ) from None
    for kind in (ECKey, OKPKey, RSAKey):
        try:
            with warnings.catch_warnings():  # a small RSA key warns here; it is refused below
                warnings.simplefilter("ignore", SecurityWarning)
                key = kind.import_key(pem)
        except (JoseError, ValueError, TypeError):
            continue
        if not key.is_private:
            break
        try:
            return SigningKey(key, _algorithm(key))
        except ValueError as exc:
            raise ClientConnectError(
                f"Cannot use the key in {path}: {exc}", "invalid_client"
            ) from None
    raise ClientConnectError(
        f"{path} holds no PEM private key (EC P-256/P-384, Ed25519 or RSA)", "invalid_client"
    )


def client_assertion(key: SigningKey, client_id: str, audience: str) -> str:
    """A fresh client assertion (RFC 7523 2.2, 3): iss = sub = client_id, aud = the issuer."""
    moment = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,  # the issuer (draft-ietf-oauth-rfc7523bis): one audience only
        "iat": moment,
        "exp": moment + ASSERTION_LIFETIME,
        "jti": secrets.token_urlsafe(24),  # single use
    }
    return jwt.encode({"alg": key.alg, "typ": "JWT"}, claims, key.key, algorithms=[key.alg])


def machine_assertion(settings: ClientSettings) -> Callable[[], str] | None:
    """Fresh client assertions with the settings' key (for --logout), or None without one."""
    if settings.private_key_file is None:
        return None
    return assertions(load_signing_key(settings.private_key_file), settings)


def assertions(key: SigningKey, settings: ClientSettings) -> Callable[[], str]:
    """A maker of fresh assertions for the settings' client and issuer."""
    return lambda: client_assertion(key, settings.client_id or "", settings.client_issuer or "")


def machine_state_dir(settings: ClientSettings) -> Path:
    """The machine client's own state folder: never a person's tokens, never another client's."""
    tag = hashlib.sha256((settings.client_id or "").encode("utf-8")).hexdigest()[:16]
    return settings.state_dir / f"machine-{tag}"


def machine_client(
    settings: ClientSettings,
    key: SigningKey | None,
    *,
    grant: str = CLIENT_CREDENTIALS,
    method: str | None = None,
) -> OAuthClientInformationFull:
    """The pre-registered machine client, bound to its issuer."""
    chosen = method or ("private_key_jwt" if key is not None else "client_secret_basic")
    return OAuthClientInformationFull(
        client_id=settings.client_id,
        issuer=settings.client_issuer,
        client_secret=settings.client_secret if chosen.startswith("client_secret_") else None,
        token_endpoint_auth_method=chosen,
        redirect_uris=None,
        grant_types=[grant],
    )


class MachineOAuthProvider(SecureOAuthProvider):
    """SecureOAuthProvider whose sign-in is one token request: no browser, no registration."""

    grant_type = CLIENT_CREDENTIALS

    def __init__(self, parts: ProviderParts, key: SigningKey | None = None) -> None:
        super().__init__(parts)
        settings = parts.settings
        self._key = key
        client = self._identity(settings, key)
        self._pre_registered = client
        self.context.client_metadata = OAuthClientMetadata(
            redirect_uris=None,
            grant_types=[self.grant_type],
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            scope=settings.scope,
        )

    def _identity(
        self, settings: ClientSettings, key: SigningKey | None
    ) -> OAuthClientInformationFull:
        """Who this client is at the authorization server (pre-registered, bound to its issuer)."""
        return machine_client(settings, key)

    def check_metadata(self) -> None:
        """The issuer is the configured one, over https; no PKCE needed (no browser)."""
        metadata = self.context.oauth_metadata
        if metadata is None:
            raise self.discovery_failed()
        self.check_issuer(str(metadata.issuer))
        require_https(metadata)
        supported = metadata.grant_types_supported
        if supported is not None and self.grant_type not in supported:
            raise ClientConnectError(
                f"The authorization server {metadata.issuer} does not offer the "
                f"{self.grant_type} grant (grant_types_supported).",
                "unsupported_grant_type",
            )

    async def _redirect(self, url: str) -> None:
        raise ClientConnectError(
            "A machine client never signs in through a browser.", "invalid_client"
        )

    def _before(self, request: httpx2.Request) -> tuple[str, httpx2.Request]:
        step = step_of(request)
        if step == "discovery":
            return super()._before(request)
        self.check_metadata()
        if step == "registration":  # the pre-registered client only: never a new one
            raise ClientConnectError(
                "The machine client's credentials do not belong to this authorization server; "
                "nothing was registered.",
                "invalid_client",
            )
        return step, request

    def revocation_assertion(self) -> Callable[[], str] | None:
        """Fresh assertions with this client's key, for RFC 7009 (None with a secret)."""
        return None if self._key is None else assertions(self._key, self._settings)

    async def _authenticate(self, data: dict[str, str], headers: dict[str, str]) -> None:
        """Client authentication: Basic with the secret, or a signed assertion (RFC 7523 2.2)."""
        if self._key is None:
            self.context.prepare_token_auth(data, headers)
            return
        data["client_assertion_type"] = ASSERTION_TYPE
        data["client_assertion"] = assertions(self._key, self._settings)()

    def _choose_scope(self) -> None:
        """Only `--scope` at first: the client's registration says what it may have, and
        asking for every scope the server names would be refused (invalid_scope). A step-up
        (403 insufficient_scope) asks for the union, as for a person."""
        if self._sign_in_scope is not None:  # a 401, not a step-up
            self.context.client_metadata.scope = self._settings.scope

    async def _grant_form(self, data: dict[str, str]) -> None:
        """The grant's own parameters (none for client_credentials)."""

    @override
    async def _perform_authorization(self) -> httpx2.Request:
        """One token request: the grant, resource (RFC 8707) and scope, authenticated."""
        self._choose_scope()
        self._trace(f"{self.grant_type}: asking the token endpoint")
        data: dict[str, str] = {"grant_type": self.grant_type}
        await self._grant_form(data)
        if self.context.should_include_resource_param(self.context.protocol_version):
            data["resource"] = self.context.get_resource_url()
        if self.context.client_metadata.scope:
            data["scope"] = self.context.client_metadata.scope
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        await self._authenticate(data, headers)
        return httpx2.Request("POST", self._get_token_endpoint(), data=data, headers=headers)

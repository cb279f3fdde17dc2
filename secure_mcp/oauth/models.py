"""The database tables: clients, codes, tokens and their families, consents, resource servers,
pending sign-ins, shared server secrets and rate-limit buckets.

The schema is created and changed only by the Alembic migrations in `migrations/versions`;
`tests/oauth/test_storage.py::test_the_migrations_build_exactly_these_tables` keeps the two equal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the authorization server's tables."""


class Client(Base):
    """A registered OAuth client (RFC 7591); the secret is kept only as a SHA-256 hash."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(2048), primary_key=True)  # or a CIMD URL
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    scope: Mapped[str | None] = mapped_column(String(1024))
    client_name: Mapped[str | None] = mapped_column(String(256))
    registered: Mapped[dict[str, Any]] = mapped_column(JSON)  # the metadata as answered
    issued_at: Mapped[int] = mapped_column(Integer)
    # When a user first allowed it (a code was issued). None: freshly registered, never used:
    # its redirect URIs are not trusted with errors (RFC 9700 4.11.2) and it expires unused.
    authorized_at: Mapped[int | None] = mapped_column(Integer, index=True, default=None)


class AuthorizationCode(Base):
    """An authorization code, bound to client, redirect URI, PKCE challenge and resource."""

    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(2048))  # or a CIMD URL
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    code_challenge: Mapped[str] = mapped_column(String(128))
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), default=None)  # RFC 9449 10
    resource: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    subject: Mapped[str] = mapped_column(String(256))
    family_id: Mapped[str] = mapped_column(String(64))  # tokens issued from this code
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class Token(Base):
    """An access or refresh token (hash only); `family_id` groups everything from one code."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "access" or "refresh"
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(2048))  # or a CIMD URL
    subject: Mapped[str] = mapped_column(String(256))
    scope: Mapped[str] = mapped_column(String(1024))
    resource: Mapped[str] = mapped_column(String(2048))
    issued_at: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    rotated: Mapped[bool] = mapped_column(Boolean, default=False)  # refresh token already used
    # RFC 9449 6: the thumbprint of the DPoP key the token is bound to (None: a bearer token)
    jkt: Mapped[str | None] = mapped_column(String(64), default=None)


class DpopProof(Base):
    """A DPoP proof accepted at the token endpoint, kept while a replay could pass (RFC 9449
    11.1); shared by every instance on the same database."""

    __tablename__ = "dpop_proofs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of jkt and jti
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class Consent(Base):
    """A user's consent to a client, scopes and resource; it spares the consent page, never the
    password, and never for a public client with a loopback redirect (RFC 8252 8.6)."""

    __tablename__ = "user_consents"
    __table_args__ = (UniqueConstraint("subject", "client_id", "scope", "resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(256))
    client_id: Mapped[str] = mapped_column(String(2048))  # or a CIMD URL
    scope: Mapped[str] = mapped_column(String(1024))
    resource: Mapped[str] = mapped_column(String(2048))
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class ResourceServer(Base):
    """A resource server allowed to introspect tokens for its own audience (RFC 7662 2.1)."""

    __tablename__ = "resource_servers"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(2048), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))


class PendingAuthorization(Base):
    """A validated authorization request and its sign-in, bound to one browser by a cookie.

    The sign-in lives here, not in the cookie: the cookie holds only a random value (kept as
    its hash), the row ends when the authorization does, and so does anything a copy of the
    cookie could do (RFC 6265 8.5: every port of a host shares its cookies).
    """

    __tablename__ = "pending_authorizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(64), unique=True)  # the forms' `tx`, hashed
    cookie_name: Mapped[str] = mapped_column(String(64), index=True)
    binding_hash: Mapped[str] = mapped_column(String(64))  # the cookie's value, hashed
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # the validated parameters
    subject: Mapped[str | None] = mapped_column(String(256), default=None)  # once signed in
    expires_at: Mapped[int] = mapped_column(Integer, index=True)


class TokenFamily(Base):
    """Every token issued from one code; the row is the family's lock across instances.

    Rotation updates it (while not revoked) before touching a token, and revocation flags it
    before revoking the tokens, both in that order: no rotation racing a revocation can leave a
    live token behind, and a revoked family never gets a new one (RFC 9700 4.14.2).
    """

    __tablename__ = "token_families"

    family_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[int] = mapped_column(Integer, index=True)  # its newest token's expiry


class ServerSecret(Base):
    """A secret every instance must share, generated once by whichever starts first: the
    sign-in key and resource servers' introspection credentials (with a database URL only)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(2200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(Integer)


class RateLimit(Base):
    """One rate-limit bucket shared by every instance (GCRA: the theoretical arrival time)."""

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(128), primary_key=True)  # limit name + key
    tat: Mapped[float] = mapped_column(Float, index=True)  # full again (forgettable) after this
    allowed: Mapped[bool] = mapped_column(Boolean)  # the last hit's verdict (RETURNING reads it)


class UsedAssertion(Base):
    """A client assertion's `jti`, kept until the assertion expires: single use (RFC 7523 3)."""

    __tablename__ = "used_assertions"

    jti_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # of client_id and jti
    expires_at: Mapped[int] = mapped_column(Integer, index=True)

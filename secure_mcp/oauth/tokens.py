"""Access and refresh tokens: issued, stored hashed, revoked by family.

Opaque tokens carry a type prefix and a checksum (`secure_mcp.common.token_format`) so that
resource servers refuse garbage without introspecting it. With `--access-token-format jwt` the
access token is an RFC 9068 JWT (`rfc9068.JwtSigner`); refresh tokens stay opaque. Every token
has a row, looked up by the hash of the whole string, so JWTs introspect and revoke like opaque
tokens, and tokens issued before the format existed still refresh, revoke and introspect.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from secure_mcp.common import token_format
from secure_mcp.oauth.models import Token, TokenFamily
from secure_mcp.oauth.rfc9068 import JwtSigner
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.statements import Prepared, Statements
from secure_mcp.oauth.storage import Database, now, token_hash

ACCESS = "access"
REFRESH = "refresh"
PREFIXES = {ACCESS: token_format.ACCESS_PREFIX, REFRESH: token_format.REFRESH_PREFIX}
MAX_TOKEN_LENGTH = 8192  # a JWT with a long CIMD client_id stays far below
# The grant path runs Core statements built and compiled once here, with bound parameters, on
# the driver where it can (`statements`): no ORM objects, unit of work or per-statement session
# machinery (most of a refresh grant's CPU, profiled); `Token` and `TokenFamily` stay the schema.
TOKENS: Table = cast(Table, Token.__table__)
FAMILIES: Table = cast(Table, TokenFamily.__table__)
_INSERT_TOKENS = Prepared(insert(TOKENS))
_TOKEN_BY_HASH = Prepared(select(TOKENS).where(TOKENS.c.token_hash == bindparam("hashed")))
_HOLD_FAMILY = Prepared(
    update(FAMILIES)
    .where(FAMILIES.c.family_id == bindparam("family"), FAMILIES.c.revoked.is_(False))
    .values(expires_at=bindparam("expires_at"))
)
_ROTATE = Prepared(
    update(TOKENS)
    .where(TOKENS.c.token_hash == bindparam("hashed"), TOKENS.c.rotated.is_(False))
    .values(rotated=True)
)


@dataclass(frozen=True)
class Grant:
    """What a token pair is for: who, which client, which scopes, which audience."""

    client_id: str
    subject: str
    scope: str
    resource: str
    family_id: str
    jkt: str | None = None  # RFC 9449 6: the DPoP key the access token is bound to
    refresh_jkt: str | None = None  # RFC 9449 5: a public client's refresh token too


@dataclass(frozen=True, slots=True)
class Stored:
    """A token row as read for introspection and revocation (no ORM object)."""

    token_hash: str
    kind: str
    family_id: str
    client_id: str
    subject: str
    scope: str
    resource: str
    issued_at: int
    expires_at: int
    revoked: bool
    rotated: bool
    jkt: str | None


MACHINE_FAMILY_PREFIX = "client:"  # family of a client_credentials token: no user behind it


def machine_family() -> str:
    """A new token family for a client_credentials token (no code, no refresh token)."""
    return MACHINE_FAMILY_PREFIX + secrets.token_urlsafe(16)


def is_machine(token: Stored) -> bool:
    """True for a client_credentials token: the client is its subject, no user is."""
    return is_machine_family(token.family_id)


def is_machine_family(family_id: str) -> bool:
    """True for the family of a client_credentials token."""
    return family_id.startswith(MACHINE_FAMILY_PREFIX)


def _new(
    kind: str,
    grant: Grant,
    scope: str,
    ttl: int,
    signer: JwtSigner | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new token (a JWT when `signer` is given) and its row."""
    issued = now()
    jkt = grant.jkt if kind == ACCESS else grant.refresh_jkt
    if signer is None:
        value = token_format.mint(PREFIXES[kind])
    else:
        value = signer.access_token(
            audience=grant.resource,
            client_id=grant.client_id,
            subject=grant.subject,
            scope=scope,
            issued=issued,
            ttl=ttl,
            jkt=jkt,
        )
    row = {
        "token_hash": token_hash(value),
        "kind": kind,
        "family_id": grant.family_id,
        "client_id": grant.client_id,
        "subject": grant.subject,
        "scope": scope,
        "resource": grant.resource,
        "issued_at": issued,
        "expires_at": issued + ttl,
        "revoked": False,
        "rotated": False,
        "jkt": jkt,
    }
    return value, row


async def issue(
    statements: Statements,
    settings: OAuthSettings,
    grant: Grant,
    *,
    access_scope: str,
    with_refresh: bool,
    signer: JwtSigner | None = None,
) -> dict[str, Any]:
    """Store an access token (and maybe a refresh token) in one INSERT; return the RFC 6749 5.1
    response body."""
    ttl = settings.access_token_ttl
    access, row = _new(ACCESS, grant, access_scope, ttl, signer)
    rows = [row]
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "DPoP" if grant.jkt else "Bearer",  # RFC 9449 5
        "expires_in": ttl,
        "scope": access_scope,
    }
    if with_refresh:
        # RFC 6749 6: a new refresh token keeps the scope of the one it replaces
        body["refresh_token"], refresh = _new(
            REFRESH, grant, grant.scope, settings.refresh_token_ttl
        )
        rows.append(refresh)
    await statements.insert(_INSERT_TOKENS, rows)
    return body


def start_family(session: AsyncSession, family_id: str, expires_at: int) -> None:
    """The family row of a code being redeemed (its primary key refuses a second one)."""
    session.add(TokenFamily(family_id=family_id, revoked=False, expires_at=expires_at))


async def hold_family(statements: Statements, family_id: str, expires_at: int) -> bool:
    """Lock the family for a rotation in this transaction; False when it is revoked (or gone).

    Always before any token row of the family, as in `revoke_family`: one lock order, no
    deadlock, and a revocation either waits for this rotation or is seen by it.
    """
    held = {"family": family_id, "expires_at": expires_at}
    return await statements.changed(_HOLD_FAMILY, held) == 1


async def revoke_family(session: AsyncSession, family_id: str) -> None:
    """Revoke every token issued from one code (RFC 9700 4.14.2, 4.2.4).

    The family row first: it waits for a rotation in flight to commit, and the token UPDATE
    that follows (a new statement, so a new snapshot at READ COMMITTED) sees its new tokens.
    """
    await session.execute(
        update(TokenFamily).where(TokenFamily.family_id == family_id).values(revoked=True)
    )
    await session.execute(update(Token).where(Token.family_id == family_id).values(revoked=True))


async def find(db: Database, value: str) -> Stored | None:
    """The stored token for `value`, whatever its state, or None."""
    if not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    found = await db.row(Token, "token_hash", token_hash(value))
    return Stored(**found) if found is not None else None


def is_active(token: Stored | None, kind: str = ACCESS) -> bool:
    """True for an unrevoked, unexpired token of `kind`."""
    return (
        token is not None and token.kind == kind and not token.revoked and token.expires_at > now()
    )


async def refresh_row(statements: Statements, value: str) -> Stored | None:
    """The refresh token row for `value` in this transaction (any state), or None."""
    if not value or len(value) > 512:
        return None
    found = await statements.first(_TOKEN_BY_HASH, {"hashed": token_hash(value)})
    return Stored(**found) if found is not None and found["kind"] == REFRESH else None


async def rotate(statements: Statements, hashed: str) -> bool:
    """Mark the refresh token whose hash is `hashed` used; False when it already was (reuse)."""
    return await statements.changed(_ROTATE, {"hashed": hashed}) == 1

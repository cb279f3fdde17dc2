"""Remembered consent: per user, client, scopes and resource; it spares the consent page only.

It never spares the password (every authorization signs in on its own), and never the consent
page of a public client coming back to a loopback redirect URI: any local program can listen on
a loopback port, so such a client's identity cannot be assured (RFC 8252 8.6, RFC 9700 4.13).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, select

from secure_mcp.oauth import redirect_uris
from secure_mcp.oauth.authorize_request import Pending
from secure_mcp.oauth.models import Client, Consent
from secure_mcp.oauth.storage import Database, now


def may_remember(client: Client, pending: Pending) -> bool:
    """False for a public client whose redirect is a loopback URI: it is asked every time."""
    public = client.token_endpoint_auth_method == "none"  # noqa: S105 - a method name
    return not (public and redirect_uris.is_loopback(pending.redirect_uri))


def _same(pending: Pending, subject: str) -> ColumnElement[bool]:
    """The WHERE clause of this user's consent to exactly this request."""
    return and_(
        Consent.subject == subject,
        Consent.client_id == pending.client_id,
        Consent.scope == pending.scope,
        Consent.resource == pending.resource,
    )


async def remembered(db: Database, client: Client, pending: Pending, subject: str) -> bool:
    """The user already allowed this request, and the consent page may be skipped."""
    if not may_remember(client, pending):
        return False
    async with db.read() as session:
        found = await session.scalar(
            select(Consent.id).where(_same(pending, subject), Consent.expires_at > now())
        )
    return found is not None


async def save(db: Database, pending: Pending, subject: str, ttl: int) -> None:
    """Remember the user's consent for `ttl` seconds (renewed when it exists).

    One upsert on the unique (subject, client, scope, resource): two instances saving the same
    consent at once leave one row, neither fails.
    """
    expires_at = now() + ttl
    statement = (
        db.insert(Consent)
        .values(
            subject=subject,
            client_id=pending.client_id,
            scope=pending.scope,
            resource=pending.resource,
            expires_at=expires_at,
        )
        .on_conflict_do_update(
            index_elements=["subject", "client_id", "scope", "resource"],
            set_={"expires_at": expires_at},
        )
    )
    async with db.write() as session:
        await session.execute(statement)

"""Sign-in state for one pending authorization, kept server side and bound to one browser.

Browsers send a host's cookies to every port of that host (RFC 6265 8.5), so any program
listening on another port of localhost, a client's own loopback redirect target included, can
read them. Nothing a cookie of ours carries is worth copying for long:
- every authorization request gets its own row (`PendingAuthorization`) and its own cookie,
  named after the row, holding only a random value (the row keeps its SHA-256);
- signing in marks that one row (never the browser) and replaces the cookie's value;
- the row, and with it the sign-in, ends when the authorization does (code issued, denied,
  signed out, or expired after `code_ttl`), and the cookie is deleted at the same moment;
- CSRF tokens are derived from the row with a server key (HMAC), never read from the cookie;
- the cookie is `HttpOnly`, `SameSite=Strict`, `Path=<issuer path>/authorize`, `Secure` when
  the issuer is https, and lives no longer than the row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from starlette.requests import Request
from starlette.responses import Response

from secure_mcp.oauth.authorize_request import PageError, Pending
from secure_mcp.oauth.limits import ServerBusy
from secure_mcp.oauth.models import PendingAuthorization
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.shared_secrets import SessionKey
from secure_mcp.oauth.statements import rowcount
from secure_mcp.oauth.storage import Database, now, token_hash

COOKIE_PREFIX = "signin-"
EXPIRED = "This sign-in request has expired. Return to the application and start again."


class Forged(Exception):
    """A form or cookie that does not belong to this sign-in (403)."""


@dataclass(frozen=True)
class CookieChange:
    """A sign-in cookie to set (`value`) or to delete (`value` empty)."""

    name: str
    value: str = ""
    max_age: int = 0


@dataclass(frozen=True)
class Transaction:
    """A pending authorization as a page needs it: its row and the forms' hidden values."""

    row: PendingAuthorization
    tx: str
    csrf: str

    @property
    def pending(self) -> Pending:
        """The validated request the row holds."""
        return Pending(**self.row.request)


class SignIns:
    """Creates, resumes, signs in and ends pending authorizations."""

    def __init__(self, settings: OAuthSettings, db: Database, key: bytes | SessionKey) -> None:
        self.settings = settings
        self.db = db
        self.key = key if isinstance(key, SessionKey) else SessionKey(key)
        self.path = settings.issuer_path + "/authorize"

    def _csrf(self, row: PendingAuthorization) -> str:
        """The row's CSRF token: a MAC of its ids under the server key (changes at sign-in)."""
        message = f"csrf:{row.tx_hash}:{row.binding_hash}".encode()
        return hmac.new(self.key.value, message, hashlib.sha256).hexdigest()

    def csrf_ok(self, transaction: Transaction, token: str) -> bool:
        """The form's CSRF token is this row's (constant time)."""
        return hmac.compare_digest(token.encode(), transaction.csrf.encode())

    async def begin(self, pending: Pending) -> tuple[Transaction, CookieChange]:
        """A new pending authorization and its cookie; ServerBusy when too many are pending."""
        tx, value = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        moment = now()
        row = PendingAuthorization(
            tx_hash=token_hash(tx),
            cookie_name=COOKIE_PREFIX + secrets.token_hex(8),
            binding_hash=token_hash(value),
            request=pending.to_dict(),
            subject=None,
            expires_at=moment + self.settings.code_ttl,
        )
        async with self.db.write() as session:
            await self.db.serialize(session, "pending")  # the bound holds across instances
            live = PendingAuthorization.expires_at > moment
            count = await session.scalar(select(func.count()).where(live))
            if (count or 0) >= self.settings.max_pending:  # a global bound: storage stays bounded
                oldest = await session.scalar(select(func.min(PendingAuthorization.expires_at)))
                raise ServerBusy("too many sign-ins are in progress", (oldest or moment) - moment)
            session.add(row)
        cookie = CookieChange(row.cookie_name, value, self.settings.code_ttl)
        return Transaction(row, tx, self._csrf(row)), cookie

    async def resume(self, request: Request, tx: str) -> Transaction:
        """The live authorization `tx` of this browser; PageError (expired) or Forged."""
        async with self.db.read() as session:
            row = await session.scalar(
                select(PendingAuthorization).where(
                    PendingAuthorization.tx_hash == token_hash(tx),
                    PendingAuthorization.expires_at > now(),
                )
            )
        if not tx or row is None:
            raise PageError(EXPIRED)
        cookie = request.cookies.get(row.cookie_name, "")
        if not hmac.compare_digest(token_hash(cookie), row.binding_hash):
            raise Forged
        return Transaction(row, tx, self._csrf(row))

    async def sign_in(
        self, transaction: Transaction, subject: str
    ) -> tuple[Transaction, CookieChange]:
        """Record who signed in for this one authorization; a new cookie value and CSRF token."""
        row, value = transaction.row, secrets.token_urlsafe(32)
        async with self.db.write() as session:
            result = await session.execute(
                update(PendingAuthorization)
                .where(
                    PendingAuthorization.id == row.id,
                    PendingAuthorization.binding_hash == row.binding_hash,
                )
                .values(subject=subject, binding_hash=token_hash(value))
            )
        if rowcount(result) != 1:  # ended or signed in again meanwhile
            raise PageError(EXPIRED)
        row.subject, row.binding_hash = subject, token_hash(value)
        cookie = CookieChange(row.cookie_name, value, max(1, row.expires_at - now()))
        return Transaction(row, transaction.tx, self._csrf(row)), cookie

    async def finish(self, transaction: Transaction) -> CookieChange:
        """End the authorization (only once, however many submit at the same time)."""
        async with self.db.write() as session:
            result = await session.execute(
                delete(PendingAuthorization).where(PendingAuthorization.id == transaction.row.id)
            )
        if rowcount(result) != 1:
            raise PageError(EXPIRED)
        return CookieChange(transaction.row.cookie_name)

    async def end_browser(self, request: Request) -> list[CookieChange]:
        """Sign out: end every authorization this browser's cookies belong to; delete them all."""
        names = [name for name in request.cookies if name.startswith(COOKIE_PREFIX)]
        async with self.db.write() as session:
            for name in names:
                row = await session.scalar(
                    select(PendingAuthorization).where(PendingAuthorization.cookie_name == name)
                )
                value = request.cookies[name]
                if row is not None and hmac.compare_digest(token_hash(value), row.binding_hash):
                    await session.delete(row)
        return [CookieChange(name) for name in names]

    def apply(self, response: Response, changes: list[CookieChange]) -> Response:
        """Set or delete the cookies on `response`, always with the narrowest attributes."""
        secure = urlsplit(self.settings.issuer).scheme == "https"  # lower-cased by urlsplit
        for change in changes:
            response.set_cookie(
                change.name,
                change.value,
                max_age=change.max_age,
                path=self.path,
                secure=secure,
                httponly=True,
                samesite="strict",
            )
        return response

"""Flood and password-guessing limits: who is refused, for how long, and how it is answered.

Every limit is a `Limiter` (secure_mcp.common.ratelimit) keyed by the request's source address
(IPv6 by /64) or by account: in memory for one instance, or in the database
(`shared_limits.DatabaseLimiter`) when a database URL makes several instances one server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from secure_mcp.common.ratelimit import Limiter, Rate
from secure_mcp.common.sources import source_of
from secure_mcp.oauth.errors import OAuthError
from secure_mcp.oauth.pages import error_page
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.shared_limits import DatabaseLimiter
from secure_mcp.oauth.storage import Database

UNKNOWN_ACCOUNT = "(unknown account)"  # one bucket for every name that is not an account


@dataclass(frozen=True)
class Limits:
    """The server's limiters, built once from the settings."""

    register: Limiter  # POST /register per source
    pages: Limiter  # GET/POST of the authorization pages per source
    failures_per_account: Limiter  # failed sign-ins per account
    failures_per_source: Limiter  # failed sign-ins per source

    @classmethod
    def from_settings(cls, settings: OAuthSettings, db: Database | None = None) -> Limits:
        """Limiters at the configured rates: in the database (shared by every instance) when a
        database URL is configured, else in memory."""
        if settings.database_url is not None and db is not None:
            return cls(
                register=_shared(db, "register", settings.register_rate),
                pages=_shared(db, "pages", settings.authorize_rate),
                failures_per_account=_shared(
                    db, "failures-account", settings.login_failures_per_account
                ),
                failures_per_source=_shared(
                    db, "failures-source", settings.login_failures_per_source
                ),
            )
        return cls(
            register=settings.register_rate.limiter(),
            pages=settings.authorize_rate.limiter(),
            failures_per_account=settings.login_failures_per_account.limiter(max_keys=1000),
            failures_per_source=settings.login_failures_per_source.limiter(),
        )

    async def sign_in_wait(self, account: str, source: str) -> float:
        """Seconds before this account may try a password from this source (0.0: now)."""
        return max(
            await self.failures_per_account.check(account),
            await self.failures_per_source.check(source),
        )

    async def sign_in_failed(self, account: str, source: str) -> None:
        """Count one failed sign-in against the account and the source."""
        await self.failures_per_account.hit(account)
        await self.failures_per_source.hit(source)


def _shared(db: Database, name: str, rate: Rate) -> DatabaseLimiter:
    """A database limiter enforcing `rate` per key."""
    return DatabaseLimiter(db, name, rate.count / rate.seconds, rate.count)


def source(request: Request) -> str:
    """The rate-limit key of the request's peer address."""
    return source_of(request.client.host if request.client else None)


def retry_after(wait: float) -> dict[str, str]:
    """The Retry-After header (RFC 9110 10.2.3) for a wait in seconds, rounded up."""
    return {"Retry-After": str(max(1, math.ceil(wait)))}


class TooManyRequests(OAuthError):
    """429: this source sent too much; `wait` seconds until it may again (JSON endpoints)."""

    error = "temporarily_unavailable"  # RFC 6749 4.1.2.1: overloaded, retry later
    status_code = 429

    def __init__(self, description: str, wait: float) -> None:
        super().__init__(description)
        self.wait = wait

    def response(self, *, headers: dict[str, str] | None = None) -> JSONResponse:
        """The JSON error with Retry-After."""
        return super().response(headers={**retry_after(self.wait), **(headers or {})})


class ServerBusy(TooManyRequests):
    """503: a global bound is reached (pending state, unused registrations); retry later."""

    status_code = 503


def too_many_page(wait: float, what: str = "requests") -> HTMLResponse:
    """429 as a page, for the authorization pages (a browser shows it)."""
    seconds = max(1, math.ceil(wait))
    page = error_page(
        f"Too many {what} from your address. Wait {seconds} seconds, then try again.", 429
    )
    page.headers.update(retry_after(wait))
    return page

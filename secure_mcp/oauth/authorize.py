"""The authorization endpoint: validate, sign in, consent, then redirect with code, state, iss."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from secure_mcp.oauth import cimd, users
from secure_mcp.oauth.authorize_request import (
    PageError,
    Pending,
    RedirectError,
    error_redirect,
    redirect_to,
    validate,
)
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.clients import find_client
from secure_mcp.oauth.errors import NO_STORE, AccessDenied, OAuthError
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.models import AuthorizationCode, Client, Consent, PendingRequest
from secure_mcp.oauth.pages import error_page, render
from secure_mcp.oauth.redirect_uris import LOOPBACK_HOSTS
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, now, token_hash

MAX_PENDING = 5  # authorization requests kept per browser session
FORM_FIELDS = frozenset({"csrf_token", "tx", "username", "password", "decision"})


def _redirect(url: str, status_code: int) -> RedirectResponse:
    """A redirect no cache may keep: it can carry a code or an error for one request only."""
    return RedirectResponse(url, status_code, headers=NO_STORE)


def _session_value(request: Request, key: str) -> str:
    """A random per-session value (browser session id, CSRF token), created on first use."""
    value = request.session.get(key)
    if not isinstance(value, str) or not value:
        value = request.session[key] = secrets.token_urlsafe(32)
    return value


class AuthorizationEndpoint:
    """GET /authorize (the request) and POST /authorize (login and consent forms)."""

    def __init__(
        self, settings: OAuthSettings, db: Database, documents: Documents | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.documents = documents

    async def _remember(self, request: Request, pending: Pending) -> str:
        """Store `pending` under a new transaction id; keep the newest few per browser session."""
        tx = secrets.token_urlsafe(32)
        browser = token_hash(_session_value(request, "sid"))
        async with self.db.write() as session:
            session.add(
                PendingRequest(
                    tx_hash=token_hash(tx),
                    browser_session=browser,
                    request=pending.to_dict(),
                    expires_at=now() + self.settings.code_ttl,
                )
            )
            await session.flush()
            older = (
                select(PendingRequest.id)
                .where(PendingRequest.browser_session == browser)
                .order_by(PendingRequest.id.desc())
                .offset(MAX_PENDING)
            )
            await session.execute(delete(PendingRequest).where(PendingRequest.id.in_(older)))
        return tx

    async def _pop_pending(self, request: Request, tx: str) -> Pending:
        """The pending request `tx` of this browser session, used up; PageError when unknown."""
        browser = token_hash(_session_value(request, "sid"))
        async with self.db.write() as session:
            row = await session.scalar(
                select(PendingRequest).where(
                    PendingRequest.tx_hash == token_hash(tx),
                    PendingRequest.browser_session == browser,
                )
            )
            if row is not None:
                await session.delete(row)
        if row is None or row.expires_at <= now():
            raise PageError("This sign-in request has expired. Return to the application.")
        return Pending(**row.request)

    def _user(self, request: Request) -> str | None:
        """The signed-in subject of this browser session, if any."""
        user = request.session.get("user")
        return user if user == self.settings.demo_username else None

    async def get(self, request: Request) -> Response:
        """Validate the request, then show login or consent, or redirect when already consented."""
        try:
            client, pending = await validate(
                self.settings, self.db, request.url.query, self.documents
            )
        except PageError as exc:
            return error_page(str(exc))
        except RedirectError as exc:
            return _redirect(error_redirect(exc, self.settings.issuer), 302)
        user = self._user(request)
        # A remembered consent skips the page, except where the page carries the impersonation
        # warning (MCP security best practices): that must be seen at every authorization.
        warn = _document_context(client, pending.redirect_uri)["loopback_warning"]
        if user is not None and not warn and await self._consented(request, pending):
            return _redirect(await self._issue_code(client, pending, user), 302)
        return await self._page(request, client, pending, user)

    async def _page(
        self, request: Request, client: Client, pending: Pending, user: str | None, error: str = ""
    ) -> Response:
        """The login page (not signed in) or the consent page, for a new transaction."""
        context: dict[str, Any] = {
            "action": self.settings.issuer_path + "/authorize",
            "csrf_token": _session_value(request, "csrf"),
            "tx": await self._remember(request, pending),
            "client_name": client.client_name or "An unnamed application",
            "client_id": client.client_id,
            "resource": pending.resource,
        }
        if user is None:
            return render("login.html", error=error, **context)
        host = urlsplit(pending.redirect_uri).netloc
        scopes = pending.scope.split()
        context.update(_document_context(client, pending.redirect_uri))
        return render("consent.html", user=user, redirect_host=host, scopes=scopes, **context)

    async def post(self, request: Request) -> Response:
        """Handle the login or consent form; every success answers 303 (RFC 9700 4.12)."""
        try:
            form = await read_form(request, self.settings.max_body_bytes, FORM_FIELDS)
            expected = _session_value(request, "csrf")
            if not hmac.compare_digest(form.get("csrf_token", "").encode(), expected.encode()):
                return error_page("The form has expired or was forged. Start again.", 403)
            pending = await self._pop_pending(request, form.get("tx", ""))
            client = await find_client(self.db, pending.client_id, self.documents)
            if client is None:
                raise PageError("The application is no longer registered.")
        except (PageError, OAuthError) as exc:
            return error_page(str(exc))
        if "password" in form or "username" in form:
            return await self._login(request, form, client, pending)
        return await self._decide(request, form.get("decision", ""), client, pending)

    async def _login(
        self, request: Request, form: dict[str, str], client: Client, pending: Pending
    ) -> Response:
        """Check the credentials; on success start a fresh session and resume the request."""
        subject = users.authenticate(
            self.settings, form.get("username", ""), form.get("password", "")
        )
        if subject is None:
            return await self._page(request, client, pending, None, "Wrong username or password.")
        request.session.clear()  # no session fixation: new id and CSRF token after login
        request.session["user"] = subject
        url = f"{self.settings.issuer_path}/authorize?{pending.query()}"
        return _redirect(url, 303)

    async def _decide(
        self, request: Request, decision: str, client: Client, pending: Pending
    ) -> Response:
        """Allow (remember consent, issue a code) or deny; both redirect to the client with 303."""
        user = self._user(request)
        if user is None:
            return error_page("Sign in first. Return to the application and start again.")
        if decision == "deny":
            denied = RedirectError(
                AccessDenied("the user denied access"), pending.redirect_uri, pending.state
            )
            return _redirect(error_redirect(denied, self.settings.issuer), 303)
        if decision != "allow":
            return error_page("Choose Allow or Deny.")
        await self._save_consent(request, pending)
        return _redirect(await self._issue_code(client, pending, user), 303)

    async def _consented(self, request: Request, pending: Pending) -> bool:
        """True when this browser session already allowed the same client, scopes and resource."""
        browser = token_hash(_session_value(request, "sid"))
        async with self.db.read() as session:
            found = await session.scalar(
                select(Consent.id).where(
                    Consent.browser_session == browser,
                    Consent.client_id == pending.client_id,
                    Consent.scope == pending.scope,
                    Consent.resource == pending.resource,
                    Consent.expires_at > now(),
                )
            )
        return found is not None

    async def _save_consent(self, request: Request, pending: Pending) -> None:
        """Remember the consent for this browser session."""
        if await self._consented(request, pending):
            return
        browser = token_hash(_session_value(request, "sid"))
        async with self.db.write() as session:
            session.add(
                Consent(
                    browser_session=browser,
                    client_id=pending.client_id,
                    scope=pending.scope,
                    resource=pending.resource,
                    expires_at=now() + self.settings.session_ttl,
                )
            )

    async def _issue_code(self, client: Client, pending: Pending, subject: str) -> str:
        """Store a new single-use code (10 minutes at most) and return the success redirect."""
        code = secrets.token_urlsafe(32)
        async with self.db.write() as session:
            if cimd.is_document_url(client.client_id):
                await _record_document_client(session, client)
            session.add(
                AuthorizationCode(
                    code_hash=token_hash(code),
                    client_id=pending.client_id,
                    redirect_uri=pending.redirect_uri,
                    code_challenge=pending.code_challenge,
                    resource=pending.resource,
                    scope=pending.scope,
                    subject=subject,
                    family_id=secrets.token_urlsafe(16),
                    expires_at=now() + self.settings.code_ttl,
                    used=False,
                )
            )
        # RFC 9207 2: iss on every authorization response
        return redirect_to(pending.redirect_uri, self.settings.issuer, pending.state, code=code)


async def _record_document_client(session: AsyncSession, client: Client) -> None:
    """A CIMD client's first authorization stores its row: the document as last authorized.

    The row is a record only: lookups of a URL client_id always go to the (cached) document.
    """
    row = await session.get(Client, client.client_id)
    if row is None:
        session.add(cimd.snapshot(client))
    else:
        row.registered = dict(client.registered)
        row.redirect_uris = list(client.redirect_uris)
        row.grant_types = list(client.grant_types)
        row.scope = client.scope
        row.client_name = client.client_name


def _document_context(client: Client, redirect_uri: str) -> dict[str, Any]:
    """Consent page facts for a CIMD client: the document's host, and the impersonation warning.

    MCP security best practices: a document hosted elsewhere whose redirect goes to this
    machine's loopback could be any local program claiming that application's name.
    """
    if not cimd.is_document_url(client.client_id):
        return {"client_host": None, "loopback_warning": False}
    client_host = urlsplit(client.client_id).hostname or ""
    redirect_host = urlsplit(redirect_uri).hostname or ""
    loopback_warning = redirect_host in LOOPBACK_HOSTS and client_host not in LOOPBACK_HOSTS
    return {"client_host": client_host, "loopback_warning": loopback_warning}

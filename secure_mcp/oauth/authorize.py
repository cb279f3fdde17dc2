"""The authorization endpoint: validate, sign in, consent, then redirect with code, state, iss.

Every authorization is signed in on its own (`signin.SignIns`): no browser stays signed in
between authorizations, so nothing a copied cookie holds yields a code without the password.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import func, update
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from secure_mcp.common.uris import LOOPBACK_NAMES
from secure_mcp.oauth import cimd, consents, redirect_uris, users
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
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
from secure_mcp.oauth.display import shown_host, shown_text
from secure_mcp.oauth.errors import NO_STORE, AccessDenied, OAuthError
from secure_mcp.oauth.forms import read_form
from secure_mcp.oauth.limits import (
    UNKNOWN_ACCOUNT,
    Limits,
    ServerBusy,
    retry_after,
    source,
    too_many_page,
)
from secure_mcp.oauth.models import AuthorizationCode, Client
from secure_mcp.oauth.pages import error_page, render
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.shared_secrets import SessionKey
from secure_mcp.oauth.signin import Forged, SignIns, Transaction
from secure_mcp.oauth.storage import Database, now, token_hash

FORGED = (
    "The form has expired or was forged. Signing in works only in the browser that started it, "
    "with cookies on."
)
FORM_FIELDS = frozenset({"csrf_token", "tx", "username", "password", "decision"})
logger = logging.getLogger(__name__)


def _redirect(url: str, status_code: int) -> RedirectResponse:
    """A redirect no cache may keep: it can carry a code or an error for one request only."""
    return RedirectResponse(url, status_code, headers=NO_STORE)


class AuthorizationEndpoint:
    """GET /authorize (the request), POST /authorize (sign-in and consent forms),
    GET /authorize/consent (the consent page after sign-in), POST /authorize/signout."""

    def __init__(
        self,
        settings: OAuthSettings,
        db: Database,
        documents: Documents | None,
        limits: Limits,
        key: bytes | SessionKey,
        *,
        audit: AuditLog = NO_AUDIT,
    ) -> None:
        self.audit = audit
        self.settings = settings
        self.db = db
        self.documents = documents
        self.limits = limits
        self.signins = SignIns(settings, db, key)
        self.action = settings.issuer_path + "/authorize"

    async def get(self, request: Request) -> Response:
        """Validate the request, then start its own sign-in: the login page."""
        if (refused := await self._limited(request)) is not None:
            return refused
        try:
            client, pending = await validate(
                self.settings, self.db, request.url.query, self.documents
            )
        except PageError as exc:
            return error_page(str(exc))
        except RedirectError as exc:
            if await self._redirect_trusted(exc.client, exc.redirect_uri):
                return _redirect(error_redirect(exc, self.settings.issuer), 302)
            # RFC 9700 4.11.2: a fresh client's redirect URI is not trusted with errors
            return error_page(f"This authorization request is invalid: {exc}.")
        try:
            transaction, cookie = await self.signins.begin(pending)
        except ServerBusy as exc:
            page = error_page("Too many sign-ins are in progress. Try again in a minute.", 503)
            page.headers.update(retry_after(exc.wait))
            return page
        return self.signins.apply(self._login_page(client, transaction), [cookie])

    async def consent(self, request: Request) -> Response:
        """The consent page of a signed-in authorization (the login page when not signed in)."""
        if (refused := await self._limited(request)) is not None:
            return refused
        try:
            transaction = await self.signins.resume(request, request.query_params.get("tx", ""))
            client = await self._client(transaction.pending)
        except (Forged, PageError, OAuthError) as exc:
            return _refusal(exc)
        if transaction.row.subject is None:
            return self._login_page(client, transaction)
        return self._consent_page(client, transaction)

    async def post(self, request: Request) -> Response:
        """The login or consent form; every redirect after it is a 303 (RFC 9700 4.12)."""
        if (refused := await self._limited(request)) is not None:
            return refused
        try:
            form, transaction = await self._form(request)
            client = await self._client(transaction.pending)
        except (Forged, PageError, OAuthError) as exc:
            return _refusal(exc)
        if "password" in form or "username" in form:
            return await self._login(request, form, client, transaction)
        return await self._decide(request, form.get("decision", ""), client, transaction)

    async def signout(self, request: Request) -> Response:
        """End every sign-in of this browser (the form's one must be genuine): 'Signed out'."""
        if (refused := await self._limited(request)) is not None:
            return refused
        try:
            _, transaction = await self._form(request)
        except (Forged, PageError, OAuthError) as exc:
            return _refusal(exc)
        ended = await self.signins.end_browser(request)
        name = await self._client_name(transaction.pending)
        return self.signins.apply(render("signed_out.html", client_name=name), ended)

    async def _limited(self, request: Request) -> Response | None:
        """The 429 page when this source has used up its allowance of authorization pages."""
        wait = await self.limits.pages.hit(source(request))
        return too_many_page(wait) if wait else None

    async def _form(self, request: Request) -> tuple[dict[str, str], Transaction]:
        """The posted form of a live sign-in of this browser, its CSRF token checked (Forged)."""
        form = await read_form(request, self.settings.max_body_bytes, FORM_FIELDS)
        transaction = await self.signins.resume(request, form.get("tx", ""))
        if not self.signins.csrf_ok(transaction, form.get("csrf_token", "")):
            raise Forged
        return form, transaction

    async def _client(self, pending: Pending) -> Client:
        """The request's client, looked up again (it may be gone); PageError when unusable."""
        client = await find_client(self.db, pending.client_id, self.documents)
        if client is None:
            raise PageError("The application is no longer registered.")
        return client

    async def _client_name(self, pending: Pending) -> str:
        """The client's name for a page, or a neutral one when it cannot be looked up."""
        try:
            return _name(await self._client(pending))
        except (PageError, OAuthError):
            return "the application"

    async def _login(
        self, request: Request, form: dict[str, str], client: Client, transaction: Transaction
    ) -> Response:
        """Check the password (throttled per account and source); then consent, or the code."""
        username, where = form.get("username", ""), source(request)
        known = hmac.compare_digest(username.encode(), self.settings.demo_username.encode())
        account = username if known else UNKNOWN_ACCOUNT  # never log what might be a password
        wait = await self.limits.sign_in_wait(account, where)
        if wait:
            self._record("sign_in_throttled", request, transaction, account)
            return too_many_page(wait, "failed sign-ins")
        subject = users.authenticate(self.settings, username, form.get("password", ""))
        if subject is None:
            await self.limits.sign_in_failed(account, where)
            self._record("sign_in_failed", request, transaction, account)
            logger.warning(
                "sign-in failed: account %s, source %s, client %s",
                account,
                where,
                transaction.pending.client_id,
            )
            return self._login_page(client, transaction, "Wrong username or password.")
        transaction, cookie = await self.signins.sign_in(transaction, subject)
        self._record("sign_in", request, transaction, subject)
        if await consents.remembered(self.db, client, transaction.pending, subject):
            self._record("consent_allowed", request, transaction, subject, remembered=True)
            return await self._allow(request, client, transaction, subject)
        url = f"{self.action}/consent?{urlencode({'tx': transaction.tx})}"
        return self.signins.apply(_redirect(url, 303), [cookie])

    async def _decide(
        self, request: Request, decision: str, client: Client, transaction: Transaction
    ) -> Response:
        """Allow (remember consent where allowed, issue a code) or deny; both end the sign-in."""
        pending, subject = transaction.pending, transaction.row.subject
        if subject is None:
            return error_page("Sign in first. Return to the application and start again.")
        if decision == "deny":
            cookie = await self.signins.finish(transaction)
            self._record("consent_denied", request, transaction, subject)
            denied = RedirectError(
                AccessDenied("the user denied access"), pending.redirect_uri, pending.state, client
            )
            redirect = _redirect(error_redirect(denied, self.settings.issuer), 303)
            return self.signins.apply(redirect, [cookie])
        if decision != "allow":
            return error_page("Choose Allow or Deny.")
        if consents.may_remember(client, pending):
            await consents.save(self.db, pending, subject, self.settings.consent_ttl)
        self._record("consent_allowed", request, transaction, subject, remembered=False)
        return await self._allow(request, client, transaction, subject)

    async def _allow(
        self, request: Request, client: Client, transaction: Transaction, subject: str
    ) -> Response:
        """End the sign-in (once), issue the code, send the browser back with 303."""
        try:
            cookie = await self.signins.finish(transaction)
        except PageError as exc:  # a second submission of the same form
            return error_page(str(exc))
        location = await self._issue_code(client, transaction.pending, subject)
        self._record("code_issued", request, transaction, subject)
        return self.signins.apply(_redirect(location, 303), [cookie])

    def _record(
        self, event: str, request: Request, transaction: Transaction, user: str, **fields: Any
    ) -> None:
        """One audit line about this authorization (never the password, code or cookies)."""
        pending = transaction.pending
        self.audit.record(
            event,
            request,
            client_id=pending.client_id,
            user=user,
            resource=pending.resource,
            scope=pending.scope,
            **fields,
        )

    def _login_page(self, client: Client, transaction: Transaction, error: str = "") -> Response:
        """The login page of this authorization."""
        return render("login.html", error=error, **self._context(client, transaction))

    def _consent_page(self, client: Client, transaction: Transaction) -> Response:
        """The consent page: who asks, for whom, where the browser goes back, what for."""
        pending = transaction.pending
        context = self._context(client, transaction)
        context.update(_document_context(client, pending.redirect_uri))
        return render(
            "consent.html",
            user=transaction.row.subject,
            redirect_host=shown_host(urlsplit(pending.redirect_uri).netloc),
            scopes=[(scope, self._scope_words(scope)) for scope in pending.scope.split()],
            signout_action=self.action + "/signout",
            **context,
        )

    def _scope_words(self, scope: str) -> str:
        """What a scope lets the application do, in words (the consent page's list)."""
        return self.settings.scope_descriptions.get(scope, "a permission this server calls")

    def _context(self, client: Client, transaction: Transaction) -> dict[str, Any]:
        """What both pages show and post."""
        return {
            "action": self.action,
            "csrf_token": transaction.csrf,
            "tx": transaction.tx,
            "client_name": _name(client),
            "client_id": client.client_id,
            "resource": transaction.pending.resource,
            "server_name": self.settings.server_name,
            "issuer": self.settings.issuer,
        }

    async def _redirect_trusted(self, client: Client, redirect_uri: str) -> bool:
        """Errors may go to this redirect URI: a loopback one (RFC 8252 7.3, RFC 6749 4.1.2.1),
        or one of a client a user has already allowed (not freshly registered)."""
        if redirect_uris.is_loopback(redirect_uri):
            return True
        row: Client | None = client
        if cimd.is_document_url(client.client_id):  # a document client's row is its record
            async with self.db.read() as session:
                row = await session.get(Client, client.client_id)
        return row is not None and row.authorized_at is not None

    async def _issue_code(self, client: Client, pending: Pending, subject: str) -> str:
        """Store a new single-use code (10 minutes at most) and return the success redirect."""
        code = secrets.token_urlsafe(32)
        async with self.db.write() as session:
            if cimd.is_document_url(client.client_id):
                await session.execute(_document_client_record(self.db, client))
            else:  # a user allowed it: no longer freshly registered
                await session.execute(
                    update(Client)
                    .where(Client.client_id == client.client_id, Client.authorized_at.is_(None))
                    .values(authorized_at=now())
                )
            session.add(
                AuthorizationCode(
                    code_hash=token_hash(code),
                    client_id=pending.client_id,
                    redirect_uri=pending.redirect_uri,
                    code_challenge=pending.code_challenge,
                    dpop_jkt=pending.dpop_jkt,
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


def _refusal(exc: Exception) -> Response:
    """The page for a form or sign-in that cannot go on: 403 when forged, else 400."""
    return error_page(FORGED, 403) if isinstance(exc, Forged) else error_page(str(exc))


def _name(client: Client) -> str:
    """The client's self-asserted name as shown: nothing invisible (display.shown_text)."""
    return shown_text(client.client_name or "") or "An unnamed application"


def _document_client_record(db: Database, client: Client) -> Any:
    """The upsert storing a CIMD client's row: the document as last authorized.

    The row is a record only: lookups of a URL client_id always go to the (cached) document.
    One statement, so two instances recording the same first authorization leave one row.
    """
    row = cimd.snapshot(client)
    moment = now()
    document = {
        "registered": dict(client.registered),
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": client.scope,
        "client_name": client.client_name,
    }
    return (
        db.insert(Client)
        .values(
            client_id=row.client_id,
            secret_hash=None,
            token_endpoint_auth_method=row.token_endpoint_auth_method,
            issued_at=row.issued_at,
            authorized_at=moment,
            **document,
        )
        .on_conflict_do_update(
            index_elements=["client_id"],
            set_={**document, "authorized_at": func.coalesce(Client.authorized_at, moment)},
        )
    )


def _document_context(client: Client, redirect_uri: str) -> dict[str, Any]:
    """Consent page facts for a CIMD client: the document's host, and the impersonation warning.

    MCP security best practices: a document hosted elsewhere whose redirect goes to this
    machine's loopback could be any local program claiming that application's name.
    """
    if not cimd.is_document_url(client.client_id):
        return {"client_host": None, "loopback_warning": False}
    client_host = urlsplit(client.client_id).hostname or ""
    redirect_host = urlsplit(redirect_uri).hostname or ""
    loopback_warning = redirect_host in LOOPBACK_NAMES and client_host not in LOOPBACK_NAMES
    return {"client_host": shown_host(client_host), "loopback_warning": loopback_warning}

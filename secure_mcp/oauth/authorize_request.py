"""Validating an authorization request (OAuth 2.1 4.1.1): who may be redirected, then the rest."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from secure_mcp.oauth import redirect_uris, rfc7636
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.clients import find_client
from secure_mcp.oauth.errors import (
    InvalidClientDocument,
    InvalidRequest,
    OAuthError,
    UnsupportedResponseType,
)
from secure_mcp.oauth.forms import repeated
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.rfc8707 import requested_resource
from secure_mcp.oauth.scopes import requested_scope
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database

MAX_STATE = 1024
JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # base64url of a SHA-256 digest (RFC 7638, RFC 9449 10)
# OAuth 2.1 4.1.1 and RFC 8707 2; any other parameter is ignored, even repeated (RFC 6749 3.1)
PARAMETERS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "resource"}
    | {"code_challenge", "code_challenge_method", "dpop_jkt"}
)


class PageError(Exception):
    """An error shown to the user: client or redirect URI not validated, so no redirect."""


@dataclass(frozen=True)
class Pending:
    """A validated authorization request, waiting for login and consent."""

    client_id: str
    redirect_uri: str
    scope: str
    resource: str
    code_challenge: str
    state: str | None
    dpop_jkt: str | None = None  # RFC 9449 10: the code is for this DPoP key only

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, kept in the pending authorization's row."""
        return asdict(self)


class RedirectError(Exception):
    """An error to send back to the client's validated redirect URI (OAuth 2.1 4.1.2.1)."""

    def __init__(
        self,
        error: OAuthError,
        redirect_uri: str,
        state: str | None,
        client: Client,
    ) -> None:
        super().__init__(error.description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state
        self.client = client  # who registered the redirect URI (trusted with errors or not)


def redirect_to(redirect_uri: str, issuer: str, state: str | None, **params: str) -> str:
    """`redirect_uri` with `params`, `state` and `iss` (RFC 9207 2) added to its query."""
    values = dict(params)
    if state is not None:
        values["state"] = state
    values["iss"] = issuer
    parts = urlsplit(redirect_uri)
    query = "&".join(q for q in (parts.query, urlencode(values)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def error_redirect(exc: RedirectError, issuer: str) -> str:
    """Where to send the browser for a RedirectError."""
    return redirect_to(
        exc.redirect_uri,
        issuer,
        exc.state,
        error=exc.error.error,
        error_description=exc.error.description,
    )


def _pairs(query: str) -> list[tuple[str, str]]:
    """Query parameters in order; malformed encoding is a PageError."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict", max_num_fields=100)
    except ValueError:
        raise PageError("The authorization request is malformed.") from None
    return [(k, v) for k, v in pairs if v != "" and k in PARAMETERS]


async def _client_and_redirect(
    db: Database, params: dict[str, str], counts: Counter[str], documents: Documents | None
) -> tuple[Client, str]:
    """The client and its redirect URI, or PageError: nothing unvalidated gets a redirect."""
    if counts["client_id"] > 1 or counts["redirect_uri"] > 1:
        raise PageError("client_id or redirect_uri is repeated.")
    if "client_id" not in params:
        raise PageError("The request has no client_id.")
    try:
        client = await find_client(db, params["client_id"], documents)
    except InvalidClientDocument as exc:  # CIMD: any failure is a page, never a redirect
        raise PageError(
            f"This application (client ID metadata document) cannot sign in: {exc}."
        ) from None
    if client is None:
        raise PageError(
            "The application (client_id) is not registered here: it may have registered before "
            "the data of this server was reset, or its registration expired unused. Start the "
            "application again; it can register anew."
        )
    if "authorization_code" not in client.grant_types:  # a client_credentials client
        raise PageError("This application is not registered to sign users in.")
    if "redirect_uri" not in params:
        # OAuth 2.1 4.1.1: optional only when one redirect URI, not a loopback one (its port
        # varies, RFC 8252 7.3), is registered
        uri = redirect_uris.sole_redirect(client.redirect_uris)
        if uri is None:
            raise PageError("The request has no redirect_uri.")
        return client, uri
    uri = redirect_uris.find_match(client.redirect_uris, params["redirect_uri"])
    if uri is None:  # OAuth 2.1 4.1.2.1 / RFC 8252 7.3: exact match, loopback any port
        raise PageError("The redirect_uri is not registered for this application.")
    return client, uri


def _check_rest(
    settings: OAuthSettings,
    client: Client,
    params: dict[str, str],
    counts: Counter[str],
    redirect_uri: str,
) -> Pending:
    """Everything after the redirect URI; errors raise OAuthError."""
    again = sorted((k for k, n in counts.items() if n > 1), key=lambda k: (k == "resource", k))
    if again:
        raise repeated(again[0])  # RFC 6749 3.1; several resources: RFC 8707 2
    response_type = params.get("response_type")
    if not response_type:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    challenge = rfc7636.check_challenge(
        params.get("code_challenge"), params.get("code_challenge_method")
    )
    if len(params.get("state", "")) > MAX_STATE:
        raise InvalidRequest("state is too long")
    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):
        raise InvalidRequest("dpop_jkt must be a SHA-256 JWK thumbprint (RFC 9449 10)")
    return Pending(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=requested_scope(settings, client, params.get("scope")),
        resource=requested_resource(settings, params.get("resource")),
        code_challenge=challenge,
        state=params.get("state"),
        dpop_jkt=dpop_jkt,
    )


async def validate(
    settings: OAuthSettings, db: Database, query: str, documents: Documents | None = None
) -> tuple[Client, Pending]:
    """The validated request; PageError before the redirect URI is trusted, RedirectError after."""
    pairs = _pairs(query)
    counts = Counter(k for k, _ in pairs)
    params = dict(reversed(pairs))  # first occurrence wins; repeats are rejected below
    client, redirect_uri = await _client_and_redirect(db, params, counts, documents)
    state = params.get("state")
    if counts["state"] > 1 or len(state or "") > MAX_STATE:
        state = None
    try:
        return client, _check_rest(settings, client, params, counts, redirect_uri)
    except OAuthError as exc:
        raise RedirectError(exc, redirect_uri, state, client) from None

"""Is the client's registration still known? Noticed, and made again once, without a browser.

An authorization server can forget a registration: its data folder deleted ("start over"),
a database restored, unused registrations expired. RFC 7591 has no read endpoint (RFC 7592's
needs a registration access token), and an unknown `client_id` at the authorization endpoint
is an error page the client never sees (RFC 6749 4.1.2.1), so the client asks where OAuth
answers it in a form a program can read: the token endpoint, whose `invalid_client` means
"client authentication failed (e.g., unknown client)" (RFC 6749 5.2). A refresh that gets
`invalid_client` says the same. Before opening the browser with a registration made on an
earlier run, the client sends one token request with a code that cannot exist: `invalid_grant`
(or any other answer) means the client is known; `invalid_client` means register again.
"""

from __future__ import annotations

import json
import secrets

import httpx2
from mcp.shared.auth import OAuthClientInformationFull

from secure_mcp.client.auth.errors import ClientConnectError

CHECK_CODE_PREFIX = "registration-check-"


class RegistrationGone(ClientConnectError):
    """The authorization server no longer knows the client's registration."""

    def __init__(self, issuer: str, client_id: str) -> None:
        super().__init__(gone_message(issuer), "invalid_client")
        self.issuer = issuer
        self.client_id = client_id


def gone_message(issuer: str) -> str:
    """The one line the user sees when the client registers again."""
    return (
        f"The authorization server {issuer} no longer knows this client (its registration is "
        "gone, e.g. the server's data was reset); registering again."
    )


def refused_again(gone: RegistrationGone) -> ClientConnectError:
    """The failure when even the new registration is refused: no second try, one line."""
    return ClientConnectError(
        f"The authorization server {gone.issuer} refused this client again right after it "
        "registered anew (invalid_client); check the authorization server.",
        "invalid_client",
    )


def oauth_error(response: httpx2.Response, body: bytes) -> str | None:
    """The RFC 6749 5.2 `error` code of an error answer, if it has one."""
    if response.status_code not in (400, 401):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, str) else None


def check_request(
    token_endpoint: str, client: OAuthClientInformationFull, redirect_uri: str
) -> httpx2.Request:
    """A token request no server can grant, which only an unknown client gets `invalid_client`
    for (a public client: nothing secret is sent; the code is random and never issued)."""
    data = {
        "grant_type": "authorization_code",
        "code": CHECK_CODE_PREFIX + secrets.token_urlsafe(24),
        "code_verifier": secrets.token_urlsafe(48),  # RFC 7636 4.1: 43 to 128 characters
        "redirect_uri": redirect_uri,
        "client_id": client.client_id or "",
    }
    return httpx2.Request("POST", token_endpoint, data=data)


async def still_registered(
    http: httpx2.AsyncClient,
    token_endpoint: str,
    client: OAuthClientInformationFull,
    redirect_uri: str,
) -> bool:
    """False only when the token endpoint answers `invalid_client` for `client`.

    Any other answer, or none (the real request will report that), counts as registered.
    """
    request = check_request(token_endpoint, client, redirect_uri)
    try:
        response = await http.send(request)
        body = await response.aread()
    except httpx2.HTTPError:
        return True
    return oauth_error(response, body) != "invalid_client"

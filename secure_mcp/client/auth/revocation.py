"""RFC 7009 token revocation, for `--logout` and `/logout`."""

from __future__ import annotations

import base64
import enum
from collections.abc import Callable
from urllib.parse import quote

import httpx2
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken

from secure_mcp.client.auth.binding import secure_url
from secure_mcp.client.auth.registration import oauth_error


class Outcome(enum.Enum):
    """What revoking one token set achieved."""

    REVOKED = "revoked"  # the server confirmed (RFC 7009 2.2)
    NOT_REVOKED = "not revoked"  # no endpoint, not reached, or refused: valid until they expire
    CLIENT_UNKNOWN = "client unknown"  # `invalid_client`: the server forgot the registration


Assertion = Callable[[], str]  # a fresh private_key_jwt client assertion (RFC 7523 2.2)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_authentication(
    client: OAuthClientInformationFull, data: dict[str, str], assertion: Assertion | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Form and headers authenticating `client` as at the token endpoint (RFC 7009 2.1).

    The registered `token_endpoint_auth_method` decides, as the SDK does for /token: HTTP Basic
    with the form-urlencoded id and secret (RFC 6749 2.3.1), the secret in the body, a signed
    assertion (private_key_jwt, with `assertion`), or the client_id alone for a public client.
    """
    method, secret = client.token_endpoint_auth_method, client.client_secret
    if method == "private_key_jwt" and assertion is not None:
        return {
            **data,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(),
        }, {}
    if method == "client_secret_basic" and secret:
        pair = f"{quote(client.client_id, safe='')}:{quote(secret, safe='')}"
        encoded = base64.b64encode(pair.encode()).decode()
        return data, {"Authorization": f"Basic {encoded}"}
    if method == "client_secret_post" and secret:
        return {**data, "client_id": client.client_id, "client_secret": secret}, {}
    return {**data, "client_id": client.client_id}, {}


async def revoke_tokens(
    http: httpx2.AsyncClient,
    metadata: OAuthMetadata | None,
    client: OAuthClientInformationFull | None,
    tokens: OAuthToken,
    write: Callable[[str], None],
    assertion: Assertion | None = None,
) -> Outcome:
    """Revoke the refresh token (its whole family) then the access token.

    For a public client (no secret that could be wrong), an `invalid_client` answer means the
    server no longer knows it (its data was reset, or the registration expired): it honours no
    token issued to a client it does not know, so the tokens are as good as revoked and nothing
    claims they stay valid.
    """
    endpoint = metadata.revocation_endpoint if metadata else None
    if endpoint is None or client is None:
        write("The authorization server offers no revocation; the tokens were only deleted here.")
        return Outcome.NOT_REVOKED
    if not secure_url(str(endpoint)):  # MCP authorization: https, or loopback http
        write(f"Not sent: the revocation endpoint {endpoint} is not https.")
        return Outcome.NOT_REVOKED
    revoked = True
    pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
    for token, hint in pairs:
        if not token:
            continue
        # RFC 7009 2.1: token and token_type_hint, and the client authenticates as at /token.
        form = {"token": token, "token_type_hint": hint}
        data, headers = client_authentication(client, form, assertion)
        try:
            response = await http.post(str(endpoint), data=data, headers=headers)
        except httpx2.HTTPError as exc:
            write(f"Could not reach {endpoint} to revoke the {hint}: {type(exc).__name__}")
            revoked = False
            continue
        # RFC 7009 2.2: 200 means revoked (or already invalid).
        if response.status_code == 200:
            continue
        error = oauth_error(response, await response.aread())
        if error == "invalid_client" and not client.client_secret and assertion is None:
            # a public client: not a wrong secret or key, then
            issuer = metadata.issuer if metadata else endpoint
            write(
                f"The authorization server {issuer} no longer knows this client (its "
                "registration is gone, e.g. the server's data was reset), so it honours no "
                "token issued to it: nothing is left to revoke there."
            )
            return Outcome.CLIENT_UNKNOWN
        write(f"The authorization server did not revoke the {hint} (HTTP {response.status_code}).")
        revoked = False
    return Outcome.REVOKED if revoked else Outcome.NOT_REVOKED

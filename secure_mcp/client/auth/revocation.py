"""RFC 7009 token revocation, for `--logout` and `/logout`."""

from __future__ import annotations

from collections.abc import Callable

import httpx2
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken


async def revoke_tokens(
    http: httpx2.AsyncClient,
    metadata: OAuthMetadata | None,
    client: OAuthClientInformationFull | None,
    tokens: OAuthToken,
    write: Callable[[str], None],
) -> bool:
    """Revoke the refresh token (its whole family) then the access token; True when both went."""
    endpoint = metadata.revocation_endpoint if metadata else None
    if endpoint is None or client is None:
        write("The authorization server offers no revocation; the tokens were only deleted here.")
        return False
    revoked = True
    pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
    for token, hint in pairs:
        if not token:
            continue
        # RFC 7009 2.1: token and token_type_hint; a public client identifies itself by client_id.
        data = {"token": token, "token_type_hint": hint, "client_id": client.client_id}
        if client.client_secret:  # a confidential client authenticates (RFC 7009 2.1)
            data["client_secret"] = client.client_secret
        try:
            response = await http.post(str(endpoint), data=data)
        except httpx2.HTTPError as exc:
            write(f"Could not reach {endpoint} to revoke the {hint}: {type(exc).__name__}")
            revoked = False
            continue
        # RFC 7009 2.2: 200 means revoked (or already invalid).
        if response.status_code != 200:
            status = response.status_code
            write(f"The authorization server did not revoke the {hint} (HTTP {status}).")
            revoked = False
    return revoked

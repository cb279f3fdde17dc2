"""Resource servers' introspection credentials: provisioned at start, checked on each call.

The file `<data_dir>/resource-servers.json` (0600) holds the secrets weather.py reads; the
`resource_servers` table keeps only their SHA-256 hashes, compared in constant time (RFC 7662
2.1). Without a database URL the file is where generated credentials are kept; with one, they
are kept in the database (`shared_secrets`), the same for every instance, and each instance
writes them to its own data folder's file for a weather.py beside it.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable

from sqlalchemy import delete, select
from starlette.requests import Request

from secure_mcp.common import resource_credentials as rc
from secure_mcp.oauth import shared_secrets
from secure_mcp.oauth.clients import basic_credentials
from secure_mcp.oauth.errors import InvalidClient
from secure_mcp.oauth.models import ResourceServer
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import Database, token_hash


def new_credentials() -> rc.ResourceCredentials:
    """A fresh client_id and high-entropy secret for a resource server."""
    return rc.ResourceCredentials("rs-" + secrets.token_urlsafe(12), secrets.token_urlsafe(32))


def resolve_credentials(settings: OAuthSettings) -> dict[str, rc.ResourceCredentials]:
    """Each resource's credentials: environment (first resource), the file, or generated."""
    stored = rc.load_all(settings.data_dir)
    chosen: dict[str, rc.ResourceCredentials] = {}
    changed = False
    for index, resource in enumerate(settings.resources):
        if index == 0 and settings.introspection_credentials is not None:
            chosen[resource] = settings.introspection_credentials
        elif resource in stored:
            chosen[resource] = stored[resource]
        else:
            chosen[resource] = stored[resource] = new_credentials()
            changed = True
    if changed:
        rc.save_all(settings.data_dir, stored)
    return chosen


async def shared_credentials(
    settings: OAuthSettings, db: Database
) -> dict[str, rc.ResourceCredentials]:
    """Each resource's credentials with a database URL: environment (first resource) or the
    database's, generated there by the first instance; the file gets a copy of the latter."""
    chosen: dict[str, rc.ResourceCredentials] = {}
    kept: dict[str, rc.ResourceCredentials] = {}
    for index, resource in enumerate(settings.resources):
        if index == 0 and settings.introspection_credentials is not None:
            chosen[resource] = settings.introspection_credentials
        else:
            chosen[resource] = kept[resource] = await shared_secrets.resource_credentials(
                db, resource, new_credentials
            )
    rc.save_all(settings.data_dir, kept)
    return chosen


async def provision(settings: OAuthSettings, db: Database) -> None:
    """Replace the resource_servers table with the configured resources' credentials."""
    if settings.database_url is None:
        credentials = resolve_credentials(settings)
    else:
        credentials = await shared_credentials(settings, db)
    async with db.write() as session:
        await db.serialize(session, "resource-servers")  # instances starting together take turns
        await session.execute(delete(ResourceServer))
        for resource, cred in credentials.items():
            session.add(
                ResourceServer(
                    client_id=cred.client_id,
                    resource=resource,
                    secret_hash=token_hash(cred.client_secret),
                )
            )


class VerifiedCredentials:
    """Resource servers whose credentials were verified in the last `ttl` seconds.

    Introspection is called for every uncached token a resource server sees; looking its
    credentials up in the database each time doubled the cost of a call. An entry keeps the
    SHA-256 of the secret that was verified (never the secret) and is used only when the
    presented secret hashes to it (`hmac.compare_digest`); a wrong secret always goes to the
    database, and nothing is kept for a failure. Credentials changed by another instance's
    start are seen here within `ttl` seconds.
    """

    def __init__(
        self, ttl: float = 10.0, size: int = 64, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[str, tuple[float, str, ResourceServer]] = {}

    def get(self, client_id: str, secret_hash: str) -> ResourceServer | None:
        """The server verified with this client_id and secret within `ttl`, or None."""
        entry = self._entries.get(client_id)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[2] if hmac.compare_digest(secret_hash, entry[1]) else None

    def put(self, server: ResourceServer, secret_hash: str) -> None:
        """Remember a verified server (the oldest entry goes when full)."""
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[server.client_id] = (self.clock() + self.ttl, secret_hash, server)


async def authenticate(
    db: Database, request: Request, verified: VerifiedCredentials
) -> ResourceServer:
    """The resource server calling with client_secret_basic, or InvalidClient (401)."""
    basic = basic_credentials(request)
    if basic is None:
        raise InvalidClient("resource server authentication is required")
    client_id, secret = basic
    secret_hash = token_hash(secret)
    if (known := verified.get(client_id, secret_hash)) is not None:
        return known
    async with db.read() as session:
        server = await session.scalar(
            select(ResourceServer).where(ResourceServer.client_id == client_id)
        )
    expected = server.secret_hash if server is not None else token_hash(secrets.token_hex(16))
    if not hmac.compare_digest(secret_hash, expected) or server is None:
        raise InvalidClient("unknown resource server or wrong secret")
    verified.put(server, secret_hash)
    return server

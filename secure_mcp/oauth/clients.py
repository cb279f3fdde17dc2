"""Finding clients and authenticating them at the token and revocation endpoints (RFC 6749 2.3)."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from cachetools import TTLCache
from starlette.requests import Request

from secure_mcp.oauth import rfc7523
from secure_mcp.oauth.cimd import Documents, is_document_url
from secure_mcp.oauth.errors import InvalidClient, InvalidClientDocument, InvalidRequest
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.storage import Database, token_hash


class KnownClients:
    """Registered clients looked up in the last `ttl` seconds, for the token and revocation
    endpoints, which otherwise read the client's row at every call.

    Safe to keep for a few seconds: what authentication reads (the secret's hash, the
    authentication method, the grant types) never changes after registration, and a row is only
    deleted while no user has allowed it (then it has no code or token to use). Only rows that
    exist are kept, so a client registered at another instance is found at once. Metadata
    document clients are never kept here (`cimd.Documents` has its own cache rules).
    """

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self._rows: TTLCache[str, Client] = TTLCache(maxsize=size, ttl=ttl)

    async def find(
        self, db: Database, client_id: str, documents: Documents | None = None
    ) -> Client | None:
        """`find_client`, answered from memory when the row was read within `ttl`."""
        client = self._rows.get(client_id)
        if client is None:
            client = await find_client(db, client_id, documents)
            if client is not None and not is_document_url(client_id):
                self._rows[client_id] = client
        return client


async def find_client(
    db: Database, client_id: str, documents: Documents | None = None
) -> Client | None:
    """The client registered as `client_id`, or None; a URL client_id is its metadata document.

    A URL is resolved only through `documents` (fetched or cached, never a stored row), and an
    unusable document raises InvalidClientDocument with the reason.
    """
    if is_document_url(client_id):
        return None if documents is None else await documents.client(client_id)
    if not client_id or len(client_id) > 64:
        return None
    async with db.read() as session:
        return await session.get(Client, client_id)


@dataclass(frozen=True)
class Presented:
    """What the request presented to authenticate the client."""

    client_id: str
    secret: str | None = field(repr=False)
    method: str  # "client_secret_basic", "client_secret_post", "private_key_jwt" or "none"
    assertion: str | None = field(default=None, repr=False)  # private_key_jwt (RFC 7523 2.2)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """client_id and secret from `Authorization: Basic` (RFC 6749 2.3.1), or None when absent."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "basic":
        raise InvalidClient("unsupported authorization scheme")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 2.3.1: both were application/x-www-form-urlencoded first ("+" is a space)
    return unquote_plus(client_id), unquote_plus(secret)


def presented(request: Request, form: dict[str, str]) -> Presented:
    """The client's credentials in the request; using two methods at once is InvalidRequest."""
    basic = basic_credentials(request)
    if "client_assertion" in form or "client_assertion_type" in form:
        return _assertion(form, basic)
    if basic is not None:
        if "client_secret" in form:
            raise InvalidRequest("use one client authentication method")  # RFC 6749 2.3
        if form.get("client_id", basic[0]) != basic[0]:
            raise InvalidClient("client_id does not match the Basic credentials")
        return Presented(basic[0], basic[1], "client_secret_basic")
    client_id = form.get("client_id", "")
    if not client_id:
        raise InvalidClient("client authentication is required", used_basic=False)
    if "client_secret" in form:
        return Presented(client_id, form["client_secret"], "client_secret_post")
    return Presented(client_id, None, "none")


def _assertion(form: dict[str, str], basic: tuple[str, str] | None) -> Presented:
    """private_key_jwt (RFC 7523 2.2): the assertion alone; client_id, if sent, is its `sub`."""
    if basic is not None or "client_secret" in form:
        raise InvalidRequest("use one client authentication method")  # RFC 6749 2.3
    if form.get("client_assertion_type") != rfc7523.ASSERTION_TYPE:
        raise InvalidClient(
            "client_assertion_type must be " + rfc7523.ASSERTION_TYPE, used_basic=False
        )
    assertion = form.get("client_assertion", "")
    subject = rfc7523.unverified_subject(assertion)
    if form.get("client_id", subject) != subject:  # RFC 7523 3: the same client
        raise InvalidClient("client_id does not match the client_assertion", used_basic=False)
    return Presented(subject, None, rfc7523.METHOD, assertion)


async def authenticate(
    db: Database,
    request: Request,
    form: dict[str, str],
    documents: Documents | None = None,
    known: KnownClients | None = None,
    assertions: rfc7523.Assertions | None = None,
) -> Client:
    """The authenticated client: its registered method, and a secret matching in constant time
    or an assertion signed by one of its keys (`assertions`; without it, private_key_jwt fails).
    """
    creds = presented(request, form)
    used_basic = creds.method == "client_secret_basic"
    try:
        find = known.find if known is not None else find_client
        client = await find(db, creds.client_id, documents)
    except InvalidClientDocument as exc:
        raise InvalidClient(exc.description, used_basic=used_basic) from None
    if client is None:
        raise InvalidClient("unknown client", used_basic=used_basic)
    if client.token_endpoint_auth_method != creds.method:
        raise InvalidClient(
            f"this client authenticates with {client.token_endpoint_auth_method}",
            used_basic=used_basic,
        )
    if creds.method == rfc7523.METHOD:
        if assertions is None or creds.assertion is None:
            raise InvalidClient("private_key_jwt is not accepted here", used_basic=False)
        await assertions.verify(client, creds.assertion)
    elif creds.method != "none":
        expected = client.secret_hash or ""
        given = token_hash(creds.secret or "")
        if not hmac.compare_digest(given, expected):
            raise InvalidClient("wrong client secret", used_basic=used_basic)
    return client

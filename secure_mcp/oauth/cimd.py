"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): URL client_ids.

A client_id that is an https URL with a path names a JSON document describing the client. It is
fetched (`cimd_fetch`), validated like a registration (`rfc7591.parse`), and cached per its HTTP
cache headers. Nothing is stored until the client is first authorized (`snapshot`).
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx2

from secure_mcp.common.caches import ExpiringLru
from secure_mcp.oauth import rfc7591
from secure_mcp.oauth.cimd_fetch import Fetcher, FetchError, FetchSeams
from secure_mcp.oauth.errors import InvalidClientDocument, OAuthError
from secure_mcp.oauth.models import Client
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.storage import now

MIN_TTL = 60  # seconds a document is kept at least, whatever its headers say
MAX_TTL = 24 * 3600  # and at most
DEFAULT_TTL = 300  # without cache headers
MAX_ENTRIES = 256
MAX_URL = 2000
URL_SCHEMES = ("https://", "http://")
PUBLIC = "none"  # the only token_endpoint_auth_method a document may use


def is_document_url(client_id: str) -> bool:
    """True when `client_id` is a URL (CIMD), not an id this server issued."""
    return client_id.lower().startswith(URL_SCHEMES)


def check_client_id_url(url: str, allow_insecure: bool) -> None:
    """The CIMD draft's rules for the URL itself (section 3), before anything is fetched."""
    if len(url) > MAX_URL or not url.isascii() or any(ch.isspace() or ch < " " for ch in url):
        raise InvalidClientDocument("the client_id URL is too long, not ASCII, or has spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidClientDocument("the client_id URL is malformed (host or port)") from None
    if port == 0:
        raise InvalidClientDocument("the client_id URL is malformed (host or port)")
    if parts.scheme != "https" and not (allow_insecure and parts.scheme == "http"):
        raise InvalidClientDocument("a client_id URL must be https")
    if not parts.hostname or "@" in parts.netloc:
        raise InvalidClientDocument("the client_id URL must have a host and no user info")
    if parts.path in {"", "/"}:
        raise InvalidClientDocument("the client_id URL must have a path")
    if set(parts.path.split("/")) & {".", ".."}:
        raise InvalidClientDocument("the client_id URL must not contain . or .. segments")
    if parts.query or parts.fragment or "#" in url or "?" in url:
        raise InvalidClientDocument("the client_id URL must have no query or fragment")


def _clamp(seconds: float) -> float:
    """A cache lifetime within [MIN_TTL, MAX_TTL]."""
    return float(min(max(seconds, MIN_TTL), MAX_TTL))


def _http_date(value: str) -> float | None:
    """An HTTP date as a Unix time, or None."""
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def cache_ttl(headers: httpx2.Headers) -> float:
    """Seconds to keep a document: Cache-Control, then Expires (RFC 9111 5.2, 5.3), bounded."""
    directives = [d.strip().lower() for d in headers.get("cache-control", "").split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return _clamp(0)
    for directive in directives:
        name, _, value = directive.partition("=")
        if name == "max-age":
            seconds = value.strip('"')
            return _clamp(int(seconds) if seconds.isascii() and seconds.isdigit() else 0)
    if "expires" in headers:
        expires = _http_date(headers["expires"])
        base = _http_date(headers.get("date", "")) or time.time()
        return _clamp(expires - base if expires is not None else 0)
    return _clamp(DEFAULT_TTL)


def _check_document(url: str, body: bytes) -> None:
    """The CIMD rules a registration request does not have: JSON object, client_id, no secret."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidClientDocument("the metadata document is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidClientDocument("the metadata document is not a JSON object")
    if doc.get("client_id") != url:  # CIMD 4.1: must equal the URL exactly
        raise InvalidClientDocument("the document's client_id does not equal its URL")
    name = doc.get("client_name")
    if not isinstance(name, str) or not name.strip():  # MCP client ID metadata documents
        raise InvalidClientDocument("the metadata document must have a client_name")
    if "client_secret" in doc or "client_secret_expires_at" in doc:
        raise InvalidClientDocument("a metadata document must not contain a client secret")
    method = doc.get("token_endpoint_auth_method", PUBLIC)
    if method != PUBLIC:
        raise InvalidClientDocument(
            f"token_endpoint_auth_method {method!r} is not supported here; a metadata document "
            "client must be a public client ('none'); private_key_jwt is not supported"
        )


def client_from_document(url: str, body: bytes, settings: OAuthSettings) -> Client:
    """A transient (unsaved) Client for the document, validated like a registration."""
    _check_document(url, body)
    try:
        meta = rfc7591.parse(body, settings)  # the same rules as POST /register
    except OAuthError as exc:
        raise InvalidClientDocument(
            f"the metadata document is invalid: {exc.description}"
        ) from None
    registered = meta.model_dump(exclude_none=True)
    registered.update(client_id=url, token_endpoint_auth_method=PUBLIC)
    return Client(
        client_id=url,
        secret_hash=None,
        token_endpoint_auth_method=PUBLIC,
        redirect_uris=meta.redirect_uris,
        grant_types=meta.grant_types,
        scope=meta.scope,
        client_name=meta.client_name,
        registered={**registered, "client_id_metadata_document": True},
        issued_at=now(),
    )


def snapshot(client: Client) -> Client:
    """A fresh row to store for a document client at its first authorization."""
    return Client(
        client_id=client.client_id,
        secret_hash=None,
        token_endpoint_auth_method=PUBLIC,
        redirect_uris=list(client.redirect_uris),
        grant_types=list(client.grant_types),
        scope=client.scope,
        client_name=client.client_name,
        registered=dict(client.registered),
        issued_at=now(),
    )


class Documents:
    """Resolves URL client_ids to clients: fetch under SSRF guards, validate, cache (bounded)."""

    def __init__(self, settings: OAuthSettings, seams: FetchSeams | None = None) -> None:
        self.settings = settings
        self.seams = seams or FetchSeams()
        self.fetcher = Fetcher(
            allow_insecure=settings.cimd_allow_insecure,
            timeout=settings.cimd_timeout,
            max_bytes=settings.cimd_max_bytes,
            seams=self.seams,
            ca_file=settings.cimd_ca_file,
        )
        self._cache: ExpiringLru[str, Client] = ExpiringLru(MAX_ENTRIES, self.seams.clock)

    async def client(self, url: str) -> Client:
        """The client the document at `url` describes, or InvalidClientDocument saying why."""
        check_client_id_url(url, self.settings.cimd_allow_insecure)
        moment = self.seams.clock()
        cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            fetched = await self.fetcher.fetch(url)
        except FetchError as exc:
            raise InvalidClientDocument(f"the metadata document was refused: {exc}") from None
        client = client_from_document(url, fetched.body, self.settings)
        self._cache.put(url, client, moment + cache_ttl(fetched.headers))
        return client

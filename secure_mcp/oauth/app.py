"""Assemble the authorization server: routes, session and security middleware, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from secure_mcp.common.body_guard import BodyGuardMiddleware
from secure_mcp.common.hosts import HostCheckMiddleware
from secure_mcp.common.metrics import METRICS_PATH, Metrics, MetricsMiddleware
from secure_mcp.common.private_files import (
    check_private_dir,
    check_private_file,
    write_private_text,
)
from secure_mcp.common.resource_credentials import CREDENTIALS_FILE, CredentialsError
from secure_mcp.common.settings import SettingsError
from secure_mcp.oauth import resource_servers, rfc8414, shared_secrets
from secure_mcp.oauth.audit import NO_AUDIT, AuditLog
from secure_mcp.oauth.authorize import AuthorizationEndpoint
from secure_mcp.oauth.cimd import Documents
from secure_mcp.oauth.cimd_fetch import FetchSeams
from secure_mcp.oauth.clients import KnownClients
from secure_mcp.oauth.cors import (
    CLIENT_AUTH_HEADERS,
    METADATA_HEADERS,
    REGISTER_HEADERS,
    TOKEN_HEADERS,
    cors_route,
)
from secure_mcp.oauth.dpop import TokenEndpointProofs
from secure_mcp.oauth.headers import SecurityHeadersMiddleware
from secure_mcp.oauth.limits import Limits
from secure_mcp.oauth.rfc7009 import RevocationEndpoint
from secure_mcp.oauth.rfc7523 import Assertions
from secure_mcp.oauth.rfc7591 import RegistrationEndpoint
from secure_mcp.oauth.rfc7662 import IntrospectionEndpoint
from secure_mcp.oauth.rfc9068 import JwksEndpoint, JwtSigner
from secure_mcp.oauth.settings import OAuthSettings, check_session_secret
from secure_mcp.oauth.shared_secrets import SessionKey
from secure_mcp.oauth.signing_keys import (
    CLOCK_SKEW,
    KEYS_FILE,
    FileKeyStore,
    KeyStore,
    KeyStoreError,
    Schedule,
    SigningKeys,
)
from secure_mcp.oauth.storage import DB_FILE, Database
from secure_mcp.oauth.token_endpoint import TokenEndpoint

SESSION_SECRET_FILE = "session-secret"  # noqa: S105 - a file name
ENDPOINTS: tuple[str, ...] = ("/authorize", "/authorize/consent", "/authorize/signout")
ENDPOINTS += ("/token", "/register", "/introspect", "/revoke", rfc8414.JWKS_PATH)
logger = logging.getLogger(__name__)


def session_secret(settings: OAuthSettings) -> str:
    """The key of the sign-in forms' CSRF tokens: OAUTH_SESSION_SECRET, else the data folder's
    generated one (created 0600 if missing). SettingsError when shorter than 32 bytes."""
    if settings.session_secret:
        return settings.session_secret
    path = settings.data_dir / SESSION_SECRET_FILE
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            check_session_secret(stored, f"the key in {path} (delete the file for a new one)")
            return stored
    generated = secrets.token_urlsafe(48)
    write_private_text(path, generated + "\n")
    return generated


async def health(request: Request) -> Response:
    """Readiness: 200 once the server accepts requests."""
    return JSONResponse({"status": "ok"})


def routes(
    settings: OAuthSettings,
    db: Database,
    documents: Documents,
    key: bytes | SessionKey,
    keys: SigningKeys | None = None,
    audit: AuditLog = NO_AUDIT,
    metrics: Metrics | None = None,
) -> list[BaseRoute]:
    """Every endpoint; under the issuer's path when it has one, metadata at the root.

    One route per path, so a 405 lists every allowed method in `Allow` (RFC 9110 15.5.6); CORS
    only where browser-based clients call (`cors.py`).
    """
    limits = Limits.from_settings(settings, db)
    authorize = AuthorizationEndpoint(settings, db, documents, limits, key, audit=audit)
    register = RegistrationEndpoint(settings, db, limits.register, audit=audit)
    signer = JwtSigner(settings.issuer, keys) if keys is not None else None
    known = KnownClients()  # shared by /token and /revoke
    issued = _issued_counter(metrics)
    proofs = TokenEndpointProofs(settings, db, key)
    assertions = Assertions(settings, db, documents.seams)  # private_key_jwt (RFC 7523)
    token = TokenEndpoint(
        settings,
        db,
        proofs,
        documents,
        signer,
        audit=audit,
        issued=issued,
        known=known,
        assertions=assertions,
    )

    async def authorization(request: Request) -> Response:
        return await (authorize.post if request.method == "POST" else authorize.get)(request)

    endpoints: list[BaseRoute] = [
        Route("/authorize", authorization, methods=["GET", "POST"]),
        Route("/authorize/consent", authorize.consent, methods=["GET"]),
        Route("/authorize/signout", authorize.signout, methods=["POST"]),
        cors_route("/token", token.handle, ["POST"], TOKEN_HEADERS),
        cors_route("/register", register.handle, ["POST"], REGISTER_HEADERS),
        Route("/introspect", IntrospectionEndpoint(settings, db).handle, methods=["POST"]),
        cors_route(
            "/revoke",
            RevocationEndpoint(
                settings, db, documents, audit=audit, known=known, assertions=assertions
            ).handle,
            ["POST"],
            CLIENT_AUTH_HEADERS,
        ),
    ]
    if keys is not None:  # RFC 7517 5: public keys only, readable from any origin like metadata
        jwks = JwksEndpoint(keys, settings.jwks_max_age)
        endpoints.append(cors_route(rfc8414.JWKS_PATH, jwks.handle, ["GET"], METADATA_HEADERS))
    metadata = rfc8414.MetadataEndpoint(settings)
    top: list[BaseRoute] = [
        cors_route(path, metadata.handle, ["GET"], METADATA_HEADERS)
        for path in rfc8414.well_known_paths(settings)
    ]
    top.append(Route("/health", health, methods=["GET"]))
    if metrics is not None:
        top.append(Route(METRICS_PATH, metrics.handle, methods=["GET"]))
    if settings.issuer_path:
        return [*top, Mount(settings.issuer_path, routes=endpoints)]
    return top + endpoints


def _issued_counter(metrics: Metrics | None) -> Callable[[str], None] | None:
    """Counts tokens issued by grant type, when metrics are on."""
    if metrics is None:
        return None
    counter = metrics.counter("tokens_issued", "Token responses by grant type", ("grant_type",))
    return lambda grant_type: counter.labels(grant_type).inc()


def app_metrics(settings: OAuthSettings) -> Metrics | None:
    """The metrics of this app (`--metrics`), labelled by endpoint; None when off."""
    if not settings.metrics:
        return None
    known = [settings.issuer_path + path for path in ENDPOINTS]
    return Metrics("oauth", [*rfc8414.well_known_paths(settings), "/health", *known])


async def _cleanup_forever(db: Database, interval: float) -> None:
    """Delete expired rows every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        removed = await db.cleanup()
        logger.debug("removed %d expired rows", removed)


async def _reload_keys_forever(keys: SigningKeys, interval: float) -> None:
    """Re-read the signing keys every `interval` seconds (a rotation by another process)."""
    while True:
        await asyncio.sleep(interval)
        await keys.reload()


def key_schedule(settings: OAuthSettings) -> Schedule:
    """The rotation schedule: a superseded key is published until its tokens have expired."""
    reload = math.ceil(settings.signing_key_reload)
    retire_after = settings.access_token_ttl + reload + CLOCK_SKEW
    return Schedule(settings.signing_key_publish_ahead, retire_after)


def key_store(settings: OAuthSettings, db: Database) -> KeyStore:
    """Where the signing keys live: the shared database with a database URL, else a 0600 file
    in the data folder."""
    if settings.database_url is not None:
        return shared_secrets.DatabaseKeyStore(db)
    return FileKeyStore(settings.data_dir)


def signing_keys(settings: OAuthSettings, db: Database) -> SigningKeys | None:
    """The JWT signing keys, or None for opaque tokens."""
    if not settings.jwt_access_tokens:
        return None
    return SigningKeys(key_store(settings, db), key_schedule(settings))


def preflight(settings: OAuthSettings) -> None:
    """Fail before serving: data folder and database usable, credentials file well-formed.

    Raises SettingsError or OSError with one readable line (oauth.py exits 2 on either).
    """
    check_private_dir(settings.data_dir)  # ours, and writable by no one else (UnsafePathError)
    for name in (DB_FILE, SESSION_SECRET_FILE, CREDENTIALS_FILE, KEYS_FILE):
        check_private_file(settings.data_dir / name)
    if settings.database_url is not None:  # secrets in the database; the file is only a copy
        return
    db_file = settings.data_dir / DB_FILE
    db_file.touch(mode=0o600, exist_ok=True)
    with db_file.open("r+b"):  # PermissionError here, not a database traceback later
        pass
    try:
        resource_servers.resolve_credentials(settings)
    except CredentialsError as exc:
        raise SettingsError(f"{exc}; fix or delete the file") from None
    if settings.jwt_access_tokens:
        try:
            FileKeyStore(settings.data_dir).read()  # a damaged key file: one line, not a traceback
        except KeyStoreError as exc:
            raise SettingsError(str(exc)) from None


def database(settings: OAuthSettings) -> Database:
    """The configured database: `database_url`, or the SQLite file in the data folder."""
    return Database(settings.data_dir, settings.unused_client_ttl, url=settings.database_url)


async def prepare(settings: OAuthSettings) -> None:
    """Migrate the database before serving (StorageError: one line, e.g. a newer schema), and
    check the shared signing keys (SettingsError)."""
    db = database(settings)
    try:
        await db.migrate()
        if settings.jwt_access_tokens and settings.database_url is not None:
            try:  # damaged shared keys: one line now, not a traceback at the first request
                await key_store(settings, db).load()
            except KeyStoreError as exc:
                raise SettingsError(str(exc)) from None
    finally:
        await db.close()


def _session_key(settings: OAuthSettings) -> SessionKey:
    """The sign-in key: OAUTH_SESSION_SECRET, the data folder's (no database URL), or loaded
    from the database at start (with one)."""
    if settings.database_url is None or settings.session_secret:
        return SessionKey(session_secret(settings).encode("utf-8"))
    return SessionKey()


async def _load_session_key(db: Database, key: SessionKey) -> None:
    """Fill `key` from the database when it is kept there (generated by the first instance)."""
    try:
        _ = key.value
    except RuntimeError:
        stored = await shared_secrets.session_key(db)
        check_session_secret(stored, "the session key in the database (server_secrets)")
        key.set(stored)


def build_app(settings: OAuthSettings, seams: FetchSeams | None = None) -> Starlette:
    """The ASGI app; its lifespan opens storage and provisions resource-server credentials.

    `seams` replace the metadata document fetcher's resolver, transport and clock in tests.
    """
    preflight(settings)
    db = database(settings)
    key = _session_key(settings)
    documents = Documents(settings, seams)
    keys = signing_keys(settings, db)
    metrics = app_metrics(settings)
    audit = AuditLog(settings.audit_log)  # UnsafePathError (OSError): one line, exit 2

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.start()
        await _load_session_key(db, key)
        await resource_servers.provision(settings, db)
        # plain tasks, not a task group: test fixtures may exit the lifespan from another task
        tasks = [asyncio.create_task(_cleanup_forever(db, settings.cleanup_interval))]
        if keys is not None:
            await keys.start()
            reload = _reload_keys_forever(keys, settings.signing_key_reload)
            tasks.append(asyncio.create_task(reload))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await db.close()
            audit.close()

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(HostCheckMiddleware, allowed=settings.allowed_hosts, url=settings.issuer),
        Middleware(  # the whole body within the deadline before any endpoint runs
            BodyGuardMiddleware,
            timeout=settings.connection_limits.body_timeout,
            limit=settings.max_body_bytes,
        ),
    ]
    if metrics is not None:  # outermost: refusals are counted too
        middleware.insert(0, Middleware(MetricsMiddleware, metrics=metrics))
    app_routes = routes(settings, db, documents, key, keys, audit, metrics)
    return Starlette(routes=app_routes, middleware=middleware, lifespan=lifespan)

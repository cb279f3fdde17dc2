"""The SDK's OAuthClientProvider, with the checks the MCP authorization spec requires added."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.auth.utils import (
    extract_field_from_www_auth,
    extract_resource_metadata_from_www_auth,
    issuers_match,
    should_use_client_metadata_url,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata
from pydantic import AnyUrl
from typing_extensions import override

from secure_mcp.client.auth.binding import (
    Flow,
    check_code_exchange,
    require_https,
    start_flow,
    valid_access_token,
)
from secure_mcp.client.auth.errors import ClientConnectError, Failures
from secure_mcp.client.auth.identity import (
    client_metadata,
    document_identity_allowed,
    is_shared_identity,
    pre_registered_client,
    registered_for,
    require_iss,
    with_redirect_uri,
)
from secure_mcp.client.auth.interaction import Authorizer
from secure_mcp.client.auth.registration import (
    RegistrationGone,
    oauth_error,
    refused_again,
    still_registered,
)
from secure_mcp.client.auth.resource import (
    allowed_resources,
    resource_mismatch_message,
    same_resource,
)
from secure_mcp.client.auth.steps import (
    is_step_up,
    malformed,
    step_of,
    still_refused,
    without_token,
)
from secure_mcp.client.auth.storage import (
    FileTokenStorage,
    RefreshLock,
    StorageError,
    is_registration,
)
from secure_mcp.client.auth.transport import Bounds, ReportingTransport, network_transport
from secure_mcp.client.settings import ISSUER_REQUIRED, ClientSettings
from secure_mcp.client.terminal import clean_line

__all__ = [
    "EXPECTED_FAILURES",
    "ISSUER_REQUIRED",
    "ProviderParts",
    "SecureOAuthProvider",
    "pre_registered_client",
]

EXPECTED_FAILURES = (ClientConnectError, OAuthFlowError, StorageError)
# What the SDK raises on an answer it cannot parse (pydantic's ValidationError is a ValueError).
MALFORMED = (ValueError, KeyError, TypeError)
MAX_EXPIRY_MARGIN = 30.0  # refresh up to this long before the access token expires
LOCK_GRACE = 5.0  # seconds past a refresh's own deadline before another process's lock is moot


class _Restart(Exception):
    """The registration is gone: run the flow once more, from the request (it registers)."""


@dataclass(frozen=True)
class ProviderParts:
    """What every provider is built from: the client's settings, the store of its tokens, the
    browser side of a sign-in, and where it writes its lines."""

    settings: ClientSettings
    storage: FileTokenStorage
    authorizer: Authorizer
    write: Callable[[str], None]


class SecureOAuthProvider(OAuthClientProvider):
    """OAuthClientProvider plus: S256 required, discovery failures named, restart-safe refresh."""

    def __init__(
        self, parts: ProviderParts, http_transport: httpx2.AsyncBaseTransport | None = None
    ) -> None:
        settings, storage, authorizer = parts.settings, parts.storage, parts.authorizer
        super().__init__(
            settings.server_url,
            client_metadata(settings, authorizer.redirect_uri),
            storage,
            redirect_handler=self._redirect,
            callback_handler=authorizer.callback,
            client_metadata_url=settings.client_metadata_url,
            validate_resource_url=self._validate_resource,
        )
        self.storage = storage
        self._pre_registered = pre_registered_client(settings, authorizer.redirect_uri)
        self._authorizer = authorizer
        self._settings = settings
        self._write = parts.write
        self._tried: list[str] = []
        self._bound: object = None
        self._flow: Flow | None = None  # the sign-in in progress (RFC 9700 4.4)
        self.failures = Failures()  # what the flow, transports and hooks report (first wins)
        self._sign_in_scope: str | None = None  # a 401's challenged scope ("" when none)
        self._challenged_prm: str | None = None  # a 401's resource_metadata URL
        self._transport = http_transport  # for the registration check (a plain client)
        self._registered_now: str | None = None  # the client_id registered in this process
        self._checked: set[str] = set()  # registrations found known in this process
        self._refresh_lock: RefreshLock | None = None
        storage.current_issuer = self._current_issuer
        storage.current_client = lambda: self.context.client_info

    @property
    def settings(self) -> ClientSettings:
        """The client's settings."""
        return self._settings

    def _current_issuer(self) -> str | None:
        metadata = self.context.oauth_metadata
        return str(metadata.issuer) if metadata else None

    def _trace(self, line: str) -> None:
        if self._settings.verbose:
            self._write(f"[oauth] {clean_line(line)}")

    async def _validate_resource(self, server_url: str, resource: str | None) -> None:
        """RFC 9728 3.3 / RFC 8707: PRM `resource` must name the server we connected to."""
        fetched_from = self._tried[-1] if self._tried else None
        allowed = allowed_resources(server_url, fetched_from, self._challenged_prm)
        if resource is None or not any(same_resource(url, resource) for url in allowed):
            raise ClientConnectError(
                resource_mismatch_message(server_url, resource or "(none)"), "invalid_target"
            )

    def check_metadata(self) -> None:
        """Refuse to go on without AS metadata advertising PKCE S256 (MCP authorization)."""
        metadata = self.context.oauth_metadata
        if metadata is None:
            raise self.discovery_failed()
        self.check_issuer(str(metadata.issuer))
        require_https(metadata)  # before a code, a verifier, a secret or a token goes there
        # MCP authorization, "Authorization Code Protection": clients MUST refuse to proceed
        # when code_challenge_methods_supported is absent or lacks S256 (RFC 7636 4.2).
        if "S256" not in (metadata.code_challenge_methods_supported or []):
            raise ClientConnectError(
                f"The authorization server {metadata.issuer} does not advertise PKCE S256 "
                "(code_challenge_methods_supported); refusing to sign in there.",
                "invalid_request",
            )

    def discovery_failed(self) -> ClientConnectError:
        """The error for an authorization server that could not be discovered."""
        tried = ", ".join(self._tried) or "(nothing)"
        return ClientConnectError(
            f"Could not discover the authorization server for {self._settings.server_url}. "
            f"Tried: {tried}",
            "discovery_failed",
        )

    def check_issuer(self, issuer: str) -> None:
        """A pre-registered client goes only to its own authorization server (RFC 6749 2.3, 10.1).

        The SDK would reuse issuer-less credentials anywhere, and for a mismatch would register
        instead; we stop before any registration, redirect or token request.
        """
        configured = self._settings.client_issuer
        if self._settings.client_id and configured and not issuers_match(configured, issuer):
            raise ClientConnectError(
                f"The server at {self._settings.server_url} uses the authorization server "
                f"{issuer}, but --client-id {self._settings.client_id} is registered with "
                f"{configured}; its credentials were not sent.",
                "invalid_client",
            )

    async def _redirect(self, url: str) -> None:
        self.check_metadata()
        metadata = self.context.oauth_metadata
        assert metadata is not None  # check_metadata refuses to go on without it
        await self._check_registration(metadata)
        self._flow = start_flow(metadata, url)  # RFC 9700 4.4: this sign-in's server
        self._trace("authorization: sending you to the authorization endpoint")
        await self._authorizer.redirect(url, self._current_issuer())

    def _re_registrable(self, client: OAuthClientInformationFull) -> bool:
        """A registration this client made itself, so it may make it again."""
        return is_registration(client) and not is_shared_identity(client, self._settings)

    async def _check_registration(self, metadata: OAuthMetadata) -> None:
        """Before the browser opens with a registration from an earlier run: is it still known?

        RegistrationGone (the flow then registers again) when the server answers
        `invalid_client`; see `registration.py` for why the token endpoint is asked.
        """
        client = self.context.client_info
        if client is None or not self._re_registrable(client):
            return
        client_id = client.client_id or ""
        if client_id in self._checked or client_id == self._registered_now:
            return
        uris = self.context.client_metadata.redirect_uris or []
        redirect_uri = str(uris[0]) if uris else ""
        bounds = Bounds(
            other_bytes=self._settings.max_oauth_response_bytes,
            other_seconds=self._settings.oauth_deadline,
        )
        inner = self._transport or network_transport(self._settings.http_keepalive)
        plain = ReportingTransport(inner, lambda failure: None, bounds)
        async with httpx2.AsyncClient(transport=plain) as http:
            known = await still_registered(http, str(metadata.token_endpoint), client, redirect_uri)
        self._trace(f"registration check: client_id {client_id} {'known' if known else 'unknown'}")
        if not known:
            raise self._gone(client)
        self._checked.add(client_id)

    def _gone(self, client: OAuthClientInformationFull) -> RegistrationGone:
        """Forget a registration the server no longer knows (and its tokens), here and on disk."""
        issuer = self._current_issuer() or client.issuer or ""
        self.storage.forget_registration(issuer, client.client_id or "")
        self.context.client_info = None
        self.context.clear_tokens()
        return RegistrationGone(issuer, client.client_id or "")

    def _reuse_registration(self, body: bytes) -> None:
        """After the AS metadata: use this client's registration with that server, if any.

        The SDK looks for one before it knows the server (so a second MCP URL on the same
        server would register again and replace the first URL's registration); here the
        registration is per authorization server and shared by all its resources.
        """
        issuer = self.context.auth_server_url
        if self.context.client_info is not None or issuer is None:
            return
        metadata = OAuthMetadata.model_validate_json(body)
        if should_use_client_metadata_url(metadata, self.context.client_metadata_url):
            return
        stored = self.storage.registration(issuer)
        if stored is not None and registered_for(stored, self._authorizer.redirect_uri_for(issuer)):
            self.context.client_info = stored
            self._trace(f"registration: reusing client_id {stored.client_id} at {issuer}")

    async def _take_refresh_lock(self) -> RefreshLock | None:
        """When the tokens need a refresh: the state folder's refresh lock, then a re-read.

        Another client.py sharing the folder may have refreshed (and so rotated the refresh
        token) meanwhile: with the newer tokens read back, the SDK refreshes only if they too
        need it, and two processes never spend one refresh token.
        """
        if not self._initialized:
            await self._initialize()
        if self.context.is_token_valid() or not self.context.can_refresh_token():
            return None
        lock = await self.storage.refresh_lock(self._settings.oauth_deadline + LOCK_GRACE)
        self.context.current_tokens = await self.storage.get_tokens()
        self.context.token_expiry_time = self.storage.expires_at()
        stored = await self.storage.get_client_info()
        if stored is not None and self._pre_registered is None:
            self.context.client_info = stored
        self._refresh_early()
        return lock

    def _release_refresh_lock(self) -> None:
        if self._refresh_lock is not None:
            self._refresh_lock.release()
            self._refresh_lock = None

    def _redirect_uri(self) -> str:
        """This sign-in's redirect URI: the issuer's own, for a client registered here."""
        client, metadata = self.context.client_info, self.context.oauth_metadata
        if client is None or metadata is None or is_shared_identity(client, self._settings):
            return self._authorizer.redirect_uri
        return self._authorizer.redirect_uri_for(str(metadata.issuer))

    def _refresh_early(self) -> None:
        """Treat the access token as expired a little early (a tenth of its life, 30 s at most)."""
        tokens, expiry = self.context.current_tokens, self.context.token_expiry_time
        if tokens is not None and tokens.expires_in is not None and expiry is not None:
            self.context.token_expiry_time = expiry - min(MAX_EXPIRY_MARGIN, tokens.expires_in / 10)

    def _choose_scope(self) -> None:
        """MCP scope selection: the challenge's scope, else PRM scopes_supported, else omit.

        The SDK would otherwise ask for every scope the authorization server lists. `--scope`
        replaces the server's hint at a sign-in; a step-up (403) asks for the union as usual.
        """
        prm = self.context.protected_resource_metadata
        no_hint = prm is None or prm.scopes_supported is None
        if self._sign_in_scope == "" and no_hint:
            self.context.client_metadata.scope = None
        if self._sign_in_scope is not None and self._settings.scope:
            self.context.client_metadata.scope = self._settings.scope

    def _check_access_token(self) -> None:
        """RFC 6750 2.1: an access token that cannot go in a header is refused, not stored."""
        tokens = self.context.current_tokens
        if tokens is not None and not valid_access_token(tokens.access_token):
            self.context.clear_tokens()
            self.storage.delete_tokens()
            raise ClientConnectError(
                "The authorization server issued an access token with characters an HTTP "
                "header cannot carry (RFC 6750 2.1); it was not used.",
                "invalid_token",
            )

    def _bind_if_discovered(self) -> None:
        metadata = self.context.oauth_metadata
        if metadata is not None and metadata is not self._bound:
            self._bound = metadata
            self.storage.bind(
                self.context.auth_server_url or str(metadata.issuer),
                metadata,
                self.context.protected_resource_metadata,
            )

    def _before(self, request: httpx2.Request) -> tuple[str, httpx2.Request]:
        """Check a request of the flow before it leaves; returns its step and what to send."""
        step = step_of(request)
        if step == "discovery":
            self._tried.append(str(request.url))
            return step, request
        self.check_metadata()
        metadata = self.context.oauth_metadata
        assert metadata is not None  # check_metadata refuses to go on without it
        if step == "token exchange":
            flow, self._flow = self._flow, None
            check_code_exchange(flow, metadata, request)
        if step == "registration":  # RFC 9700 4.4.2.2: this issuer's own redirect URI
            uri = self._authorizer.redirect_uri_for(str(metadata.issuer))
            self.context.client_metadata.redirect_uris = [AnyUrl(uri)]
            return step, with_redirect_uri(request, uri)
        return step, request

    async def _after(self, step: str, request: httpx2.Request, response: httpx2.Response) -> None:
        where = f"{request.method} {request.url.copy_with(query=None)}"
        self._trace(f"{step}: {where} -> HTTP {response.status_code}")
        ok = response.status_code in (200, 201)
        if step == "discovery" and ok:
            body = await response.aread()
            allowed = document_identity_allowed(body)
            if allowed is not None:  # the server's metadata: CIMD only where it sends `iss`
                if self._settings.client_metadata_url:
                    self.context.client_metadata_url = (
                        self._settings.client_metadata_url if allowed else None
                    )
                self._reuse_registration(body)
        if step == "registration" and ok:
            await response.aread()
            self._registered_now = str(response.json().get("client_id"))
            self._trace(f"registration: client_id {self._registered_now}")
        if step == "refresh" and response.status_code != 200:
            client = self.context.client_info
            error = oauth_error(response, await response.aread())
            if error == "invalid_client" and client is not None and self._re_registrable(client):
                self._write(str(self._gone(client)))  # the SDK then registers and signs in
            else:
                self.storage.delete_tokens()
                self._write("Your session could not be renewed; signing in again.")

    def _too_many_step_ups(self, response: httpx2.Response, seen: int) -> bool:
        """Bound re-authorizations on 403 insufficient_scope (MCP authorization, step-up).

        `seen` counts this request's 403s so far. The SDK re-authorizes at most once per
        request; `max_step_up` 0 turns that off.
        """
        wanted = extract_field_from_www_auth(response, "scope") or "more"
        if seen > min(self._settings.max_step_up, 1):
            self.failures.report(
                ClientConnectError(
                    f"The server asks for {wanted} scope, which this sign-in did not grant; "
                    "ask the server's administrator for access.",
                    "insufficient_scope",
                )
            )
            return True
        self._trace(f"step-up: the server asks for scope {wanted}; signing in again")
        return False

    async def _observed_flow(
        self, request: httpx2.Request, may_restart: bool
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow, observed step by step: checks before each request, trace after.

        An expected failure is kept in `failures` and the request is sent once more without a
        token, so the caller gets the server's own 401/403 instead of a dead MCP transport.
        A refresh happens under the state folder's refresh lock (`_take_refresh_lock`).
        """
        flow = super()._auth_flow(request)
        response: httpx2.Response | None = None
        step_ups = 0
        refused = False  # the request was answered 401 once already in this flow
        try:
            while True:
                try:
                    if response is None:
                        self._refresh_lock = await self._take_refresh_lock()
                        outgoing = await flow.__anext__()
                    else:
                        outgoing = await flow.asend(response)
                    step = ""
                    if outgoing is not request:
                        step, outgoing = self._before(outgoing)
                    if step != "refresh":  # the refresh (if any) is stored: let others go
                        self._release_refresh_lock()
                    self._bind_if_discovered()
                except StopAsyncIteration:
                    return
                except RegistrationGone as exc:
                    if may_restart and not self.failures.pending:
                        self._write(str(exc))
                        raise _Restart from exc
                    self._keep_failure(refused_again(exc), response)
                    yield without_token(request)
                    return
                except (*EXPECTED_FAILURES, *MALFORMED) as exc:
                    self._keep_failure(exc, response)
                    yield without_token(request)
                    return
                if not step:
                    self._tried = []
                response = yield outgoing
                if step:
                    if not self.failures.pending:
                        await self._after_checked(step, outgoing, response)
                    if self.failures.pending:  # the network under the flow, or its answer
                        yield without_token(request)
                        return
                elif response.status_code == 401 and refused:
                    # After a sign-in, the fresh token refused too (the SDK gives up here).
                    self.failures.report(still_refused(request))
                elif response.status_code == 401:
                    refused = True
                    self._trace(f"{request.url}: HTTP 401, sign-in needed")
                    self._sign_in_scope = extract_field_from_www_auth(response, "scope") or ""
                    self._challenged_prm = extract_resource_metadata_from_www_auth(response)
                elif is_step_up(response):
                    self._sign_in_scope = None  # a step-up: the SDK's scope union applies
                    step_ups += 1
                    if self._too_many_step_ups(response, step_ups):
                        return  # the caller gets this 403 and `failures` says why
        finally:
            self._release_refresh_lock()
            await flow.aclose()

    async def _after_checked(
        self, step: str, request: httpx2.Request, response: httpx2.Response
    ) -> None:
        try:
            await self._after(step, request, response)
        except (*EXPECTED_FAILURES, *MALFORMED) as exc:
            self._keep_failure(exc, response)

    def _keep_failure(self, exc: Exception, response: httpx2.Response | None) -> None:
        """Keep the flow's failure (the first one wins); an unusable answer gets one line."""
        if not isinstance(exc, EXPECTED_FAILURES):
            url = str(response.request.url.copy_with(query=None)) if response else "the server"
            exc = malformed(exc, url)
        self.failures.report(exc)

    def new_sign_in_budget(self) -> None:
        """Let this session sign in `max_sign_ins` times again (the user asked for a sign-in)."""
        self._authorizer.sign_ins = 0

    def revocation_assertion(self) -> Callable[[], str] | None:
        """How to sign a client assertion for RFC 7009 (none: this client has no key)."""
        return None

    def forget_tokens(self) -> None:
        """Drop the tokens in memory (the stored ones are the caller's business)."""
        self.context.clear_tokens()
        self._initialized = False

    def _restore(self) -> None:
        """After the SDK loaded the stored state: which registration to keep, and the metadata
        needed to refresh after a restart (never a guessed token endpoint)."""
        if self._pre_registered is not None:  # MCP registration order: pre-registered, CIMD, DCR
            self.context.client_info = self._pre_registered.model_copy()
        stored = self.context.client_info
        if (
            stored is not None
            and stored.client_id is not None
            and stored.client_id.startswith(("https://", "http://"))
            and stored.client_id != self._settings.client_metadata_url
        ):
            # A metadata-document identity of another (or no) --client-metadata-url: the SDK
            # would keep sending it to the same issuer, so forget it and identify afresh.
            self.context.client_info = None
        stored = self.context.client_info
        if (
            stored is not None
            and stored.issuer
            and not is_shared_identity(stored, self._settings)
            and not registered_for(stored, self._authorizer.redirect_uri_for(stored.issuer))
        ):
            # A registration from before per-issuer redirect URIs: register again.
            self.context.client_info = None
        discovered = self.storage.discovered()
        if discovered is None:
            self.context.clear_tokens()  # no token endpoint known: sign in again, never guess one
            return
        auth_server_url, metadata, resource_metadata = discovered
        self.context.auth_server_url = auth_server_url
        self.context.oauth_metadata = metadata
        self.context.protected_resource_metadata = resource_metadata
        self._bound = metadata
        self.context.token_expiry_time = self.storage.expires_at()
        self._refresh_early()
        if self.context.current_tokens is not None:
            self._trace(f"using stored tokens from {metadata.issuer}")

    def _prepare_sign_in(self) -> None:
        """Before a browser sign-in: the scope `_choose_scope` picks, `iss` where needed, and
        this issuer's redirect URI."""
        self._choose_scope()
        require_iss(self.context.client_info, self.context.oauth_metadata)
        self.context.client_metadata.redirect_uris = [AnyUrl(self._redirect_uri())]

    async def _check_token_error(self, response: httpx2.Response) -> None:
        """A token endpoint that no longer knows our registration: RegistrationGone, so the
        flow registers again (once)."""
        client = self.context.client_info
        if response.status_code in (400, 401) and client is not None:
            error = oauth_error(response, await response.aread())
            if error == "invalid_client" and self._re_registrable(client):
                raise self._gone(client)

    def _accept_tokens(self) -> None:
        """After the SDK took new tokens: refuse an unusable one, refresh a little early."""
        self._check_access_token()
        self._refresh_early()

    # The SDK's private methods we override, and nothing else below: each is thin and hands
    # over to our logic above (tests/client/test_sdk_seam.py fails when the SDK changes them).

    @override
    async def _initialize(self) -> None:
        """Load tokens and registration, plus the metadata needed to refresh after a restart."""
        await super()._initialize()
        self._restore()

    @override
    async def _perform_authorization(self) -> httpx2.Request:
        """A sign-in through the browser (`_prepare_sign_in`)."""
        self._prepare_sign_in()
        return await super()._perform_authorization()

    @override
    async def _handle_token_response(self, response: httpx2.Response) -> None:
        await self._check_token_error(response)
        await super()._handle_token_response(response)
        self._accept_tokens()

    @override
    async def _handle_refresh_response(self, response: httpx2.Response) -> bool:
        refreshed = await super()._handle_refresh_response(response)
        self._accept_tokens()
        return refreshed

    @override
    async def _auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        """The SDK's flow, observed (`_observed_flow`); run once more when the server turns
        out to have forgotten the registration, so the client registers again by itself."""
        may_restart = True
        while True:
            inner = self._observed_flow(request, may_restart)
            response: httpx2.Response | None = None
            try:
                while True:
                    try:
                        outgoing = await (
                            inner.__anext__() if response is None else inner.asend(response)
                        )
                    except StopAsyncIteration:
                        return
                    except _Restart:
                        break
                    response = yield outgoing
            finally:
                await inner.aclose()
            may_restart = False  # once: a second refusal is reported, not retried

"""DPoP for the client (RFC 9449): a key per authorization server, proofs under the SDK's flow.

The SDK's OAuth provider knows nothing of DPoP (mcp 2.3: `OAuthToken.token_type` accepts only
"Bearer", `OAuthMetadata` drops `dpop_signing_alg_values_supported`, the MCP request always
carries `Bearer`). So `DpopTransport` sits below it, between the HTTP client and the network,
and only looks at what passes:

- authorization server metadata that lists ES256 in `dpop_signing_alg_values_supported`: that
  server gets a P-256 key of its own (made once, kept 0600 next to the tokens, in
  `dpop-keys.json`), and its token endpoint is remembered;
- a POST to such a token endpoint gets a proof (RFC 9449 5); a `use_dpop_nonce` answer is
  retried once with the server's nonce (section 8); a `token_type: DPoP` answer is recorded as
  bound (by the token's hash) and handed to the SDK as the bearer-shaped answer it can parse;
- a request carrying a bound token as `Bearer` leaves as `DPoP` with a proof and its `ath`
  (section 7), retried once on a resource server's nonce challenge (section 9).

Servers without DPoP see exactly what they saw before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from secure_mcp.client.auth.errors import ClientConnectError, Report
from secure_mcp.common.private_files import check_private_dir, read_private_json, write_private_json
from secure_mcp.common.rfc9449 import CLIENT_ALGORITHM, jwk_thumbprint, make_proof
from secure_mcp.common.well_known import AUTHORIZATION_SERVER, OPENID_CONFIGURATION

KEYS_FILE = "dpop-keys.json"
MAX_BOUND = 32  # bound access tokens remembered per authorization server
METADATA_PATHS = (AUTHORIZATION_SERVER, OPENID_CONFIGURATION)
Trace = Callable[[str], None]


class KeyFileError(Exception):
    """The key file cannot be read or written."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _origin(url: httpx2.URL) -> str:
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


class DpopKeys:
    """The client's DPoP keys by issuer, with each issuer's token endpoint and bound tokens."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / KEYS_FILE
        self._issuers: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._issuers is None:
            try:
                raw = read_private_json(self.path) if self.path.exists() else {}
            except (OSError, ValueError) as exc:
                raise KeyFileError(f"cannot read {self.path}: {exc}") from None
            issuers = raw.get("issuers") if isinstance(raw, dict) else None
            self._issuers = issuers if isinstance(issuers, dict) else {}
        return self._issuers

    def _save(self) -> None:
        try:
            check_private_dir(self.path.parent)
            write_private_json(self.path, {"version": 1, "issuers": self._load()})
        except OSError as exc:
            raise KeyFileError(f"cannot write {self.path}: {exc}") from None

    def key(self, issuer: str) -> ECKey | None:
        """The issuer's key, or None (none made yet, or unusable)."""
        entry = self._load().get(issuer)
        jwk = entry.get("jwk") if isinstance(entry, dict) else None
        try:
            return ECKey.import_key(jwk) if isinstance(jwk, dict) else None
        except (JoseError, ValueError, TypeError):
            return None

    def adopt(self, issuer: str, token_endpoint: str) -> tuple[ECKey, bool]:
        """The issuer's key (made and saved when missing); True when it was just made."""
        key = self.key(issuer)
        if key is not None:  # a key means a well-formed entry
            entry = self._load()[issuer]
            if entry.get("token_endpoint") != token_endpoint:
                entry["token_endpoint"] = token_endpoint
                self._save()
            return key, False
        key = ECKey.generate_key("P-256")
        self._load()[issuer] = {
            "jwk": key.as_dict(private=True),
            "token_endpoint": token_endpoint,
            "bound": [],
        }
        self._save()
        return key, True

    def for_token_endpoint(self, url: str) -> tuple[str, ECKey] | None:
        """(issuer, key) of the server whose token endpoint is `url`."""
        for issuer, entry in self._load().items():
            if isinstance(entry, dict) and entry.get("token_endpoint") == url:
                key = self.key(issuer)
                return (issuer, key) if key is not None else None
        return None

    def bind(self, issuer: str, access_token: str) -> None:
        """Remember that `access_token` is bound to the issuer's key."""
        entry = self._load()[issuer]
        bound = [h for h in entry.get("bound", []) if isinstance(h, str)]
        entry["bound"] = [*bound, _hash(access_token)][-MAX_BOUND:]
        self._save()

    def bound_key(self, access_token: str) -> ECKey | None:
        """The key `access_token` is bound to, or None for a bearer token."""
        digest = _hash(access_token)
        for issuer, entry in self._load().items():
            if isinstance(entry, dict) and digest in entry.get("bound", []):
                return self.key(issuer)
        return None


def _json(content: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(content)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _rebuilt(response: httpx2.Response, content: bytes, request: httpx2.Request) -> httpx2.Response:
    """`response` to `request` with `content` as its (already decoded) body."""
    skip = {"content-length", "content-encoding", "transfer-encoding"}
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    return httpx2.Response(
        response.status_code,
        headers=headers,
        content=content,
        request=request,
        extensions=response.extensions,
    )


def _nonce_challenge(response: httpx2.Response) -> str | None:
    """The server's nonce when `response` asks for one (RFC 9449 8, 9), else None."""
    nonce = response.headers.get("dpop-nonce")
    if not nonce:
        return None
    if response.status_code == 401:
        challenges = ",".join(response.headers.get_list("www-authenticate"))
        return nonce if 'error="use_dpop_nonce"' in challenges else None
    # a 400 from a token endpoint: the body says use_dpop_nonce (the caller reads it)
    return nonce if response.status_code == 400 else None


class DpopTransport(httpx2.AsyncBaseTransport):
    """Adds DPoP to the requests of the SDK's flow (see the module docstring)."""

    def __init__(
        self,
        inner: httpx2.AsyncBaseTransport,
        keys: DpopKeys,
        report: Report,
        trace: Trace = lambda _: None,
    ) -> None:
        self._inner = inner
        self.keys = keys
        self._report = report
        self._trace = trace
        self._nonces: dict[str, str] = {}  # the last nonce each origin gave (RFC 9449 8.2)
        self._announced: set[str] = set()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send `request`, with a proof where one belongs; a key file problem is reported and
        answered 503 (the flow survives no exception, and never goes on without the key)."""
        try:
            return await self._handle(request)
        except KeyFileError as exc:
            self._report(ClientConnectError(str(exc), "storage_error"))
            return httpx2.Response(503, request=request, text=str(exc))

    async def _handle(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url.copy_with(query=None, fragment=None))
        if request.method == "POST" and (found := self.keys.for_token_endpoint(url)):
            return await self._token_request(request, url, *found)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = self.keys.bound_key(token) if scheme.lower() == "bearer" and token else None
        if key is not None:
            return await self._resource_request(request, url, token, key)
        response = await self._inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.startswith(METADATA_PATHS):
            return await self._metadata(response, request)
        return response

    async def _send(
        self, request: httpx2.Request, proof: Callable[[str | None], str], authorization: str
    ) -> httpx2.Response:
        """Send with a fresh proof, and once more with the server's nonce when it asks."""
        origin = _origin(request.url)
        body = await request.aread()

        def signed() -> httpx2.Request:
            headers = httpx2.Headers(request.headers)
            headers["DPoP"] = proof(self._nonces.get(origin))
            if authorization:
                headers["Authorization"] = authorization
            return httpx2.Request(
                request.method,
                request.url,
                headers=headers,
                content=body,
                extensions=request.extensions,
            )

        sent = signed()
        response = await self._inner.handle_async_request(sent)
        nonce = _nonce_challenge(response)
        if nonce is not None and response.status_code == 400:  # a token endpoint: read why
            await response.aread()
            if (_json(response.content) or {}).get("error") != "use_dpop_nonce":
                return _rebuilt(response, response.content, sent)
        if nonce is not None:
            await response.aclose()
            self._nonces[origin] = nonce
            self._trace(f"{request.url.host} asked for a DPoP nonce; sending the proof again")
            response = await self._inner.handle_async_request(signed())
        if fresh := response.headers.get("dpop-nonce"):
            self._nonces[origin] = fresh
        return response

    async def _token_request(
        self, request: httpx2.Request, url: str, issuer: str, key: ECKey
    ) -> httpx2.Response:
        """RFC 9449 5: a token request with a proof; a DPoP answer recorded as bound."""
        self._trace(f"token request: DPoP proof with key {jwk_thumbprint(key.as_dict())[:12]}…")
        response = await self._send(
            request, lambda nonce: make_proof(key, "POST", url, nonce=nonce), ""
        )
        if response.status_code != 200:
            return response
        await response.aread()
        answer = _json(response.content)
        answer = answer or {}
        token = answer.get("access_token")
        if not isinstance(token, str) or str(answer.get("token_type", "")).lower() != "dpop":
            self._trace("token request: the authorization server issued a bearer token")
            return _rebuilt(response, response.content, request)
        self.keys.bind(issuer, token)
        self._trace("token request: the access token is bound to the DPoP key")
        answer["token_type"] = "Bearer"  # noqa: S105 - the only word the SDK model knows
        return _rebuilt(response, json.dumps(answer).encode("utf-8"), request)

    async def _resource_request(
        self, request: httpx2.Request, url: str, token: str, key: ECKey
    ) -> httpx2.Response:
        """RFC 9449 7: the bound token under the DPoP scheme, with a proof hashing it."""
        if url not in self._announced:
            self._announced.add(url)
            self._trace(f"{url}: sending the DPoP-bound token with a proof")
        return await self._send(
            request,
            lambda nonce: make_proof(key, request.method, url, access_token=token, nonce=nonce),
            f"DPoP {token}",
        )

    async def _metadata(
        self, response: httpx2.Response, request: httpx2.Request
    ) -> httpx2.Response:
        """Authorization server metadata: a server offering ES256 proofs gets a key."""
        if response.status_code != 200:
            return response
        await response.aread()
        meta = _json(response.content) or {}
        algs, issuer, endpoint = (
            meta.get(name)
            for name in ("dpop_signing_alg_values_supported", "issuer", "token_endpoint")
        )
        if isinstance(algs, list) and isinstance(issuer, str) and isinstance(endpoint, str):
            if CLIENT_ALGORITHM in algs:
                key, made = self.keys.adopt(issuer, endpoint)
                thumb = jwk_thumbprint(key.as_dict())[:12]
                self._trace(
                    f"{issuer} supports DPoP: tokens will be bound to "
                    f"{'a new' if made else 'the stored'} key {thumb}…"
                )
            else:
                self._trace(f"{issuer} offers DPoP but not {CLIENT_ALGORITHM}: bearer tokens")
        return _rebuilt(response, response.content, request)

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()

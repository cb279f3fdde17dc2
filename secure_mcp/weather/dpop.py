"""DPoP at the MCP endpoint (RFC 9449 7): the proof of each request, and the token's key.

The proof is checked before the token (a forged proof costs no introspection), then its `jti`
is recorded once (`common/dpop_replay.py`), then the gate compares the token's `cnf.jkt` with
the proof's key (`bound_key`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from mcp.server.auth.provider import AccessToken
from starlette.types import Scope

from secure_mcp.common.dpop_replay import ReplayCache, ReplayCacheFull
from secure_mcp.common.rfc9449 import (
    ALGORITHMS,
    InvalidProof,
    NonceRequired,
    Nonces,
    Proof,
    check_proof,
    one_header,
)
from secure_mcp.weather.errors import InvalidDpopProofError, ProofCacheFullError, UseDpopNonceError

Clock = Callable[[], float]


def bound_key(access: AccessToken) -> str | None:
    """The thumbprint the token is bound to (`cnf.jkt`, RFC 9449 6), or None for bearer."""
    cnf = (access.claims or {}).get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    return jkt if isinstance(jkt, str) else None


class ResourceProofs:
    """The DPoP rules of this resource: proofs checked, nonces, and whether DPoP is required."""

    def __init__(
        self,
        *,
        resource_url: str,
        replay: ReplayCache,
        required: bool = False,
        nonces: Nonces | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        clock: Clock = time.time,
    ) -> None:
        parts = urlsplit(resource_url)
        self.scheme, self.netloc = parts.scheme, parts.netloc
        self.replay = replay
        self.required = required
        self.nonces = nonces
        self.algorithms = tuple(algorithms)
        self._clock = clock

    def url_of(self, scope: Scope) -> str:
        """The request's URL as the client addressed it: our scheme, its (checked) Host, the path.

        The Host was checked against this server's own names before the gate runs.
        """
        host = next((v for k, v in scope.get("headers", ()) if k.lower() == b"host"), b"")
        netloc = host.decode("latin-1") or self.netloc
        return f"{self.scheme}://{netloc}{scope.get('root_path', '')}{scope['path']}"

    async def check(self, scope: Scope, token: str) -> Proof:
        """The request's valid, unused proof for `token`; an AuthError otherwise."""
        values = [v for k, v in scope.get("headers", ()) if k.lower() == b"dpop"]
        try:
            value = one_header(values)
            if value is None:
                raise InvalidProof("The DPoP scheme needs a DPoP proof header (RFC 9449 7.1)")
            proof = check_proof(
                value,
                method=scope["method"],
                url=self.url_of(scope),
                algorithms=self.algorithms,
                access_token=token,
                nonce_ok=self.nonces.valid if self.nonces else None,
                new_nonce=self.nonces.current if self.nonces else None,
                clock=self._clock,
            )
        except NonceRequired as exc:
            raise UseDpopNonceError(exc.nonce) from None
        except InvalidProof as exc:
            raise InvalidDpopProofError(exc.description) from None
        try:
            first = await self.replay.first_use(proof.replay_key(), proof.expires_at())
        except ReplayCacheFull:
            raise ProofCacheFullError from None
        if not first:
            raise InvalidDpopProofError("This DPoP proof was already used (RFC 9449 11.1)")
        return proof

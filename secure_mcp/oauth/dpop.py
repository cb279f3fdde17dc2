"""DPoP at the token endpoint (RFC 9449 5): the proof checked, its `jti` recorded once."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.requests import Request

from secure_mcp.common.rfc9449 import InvalidProof, NonceRequired, Nonces, check_proof, one_header
from secure_mcp.oauth.errors import InvalidDpopProof, UseDpopNonce
from secure_mcp.oauth.models import DpopProof
from secure_mcp.oauth.settings import OAuthSettings
from secure_mcp.oauth.shared_secrets import SessionKey
from secure_mcp.oauth.storage import Database

Clock = Callable[[], float]


class TokenEndpointProofs:
    """Checks the `DPoP` header of token requests; proofs are remembered in the database."""

    def __init__(
        self,
        settings: OAuthSettings,
        db: Database,
        key: bytes | SessionKey,
        clock: Clock = time.time,
    ) -> None:
        self.url = settings.endpoint("/token")
        self.algorithms = settings.dpop_algorithms
        self.db = db
        # keyed by the session key: every instance on one database makes and accepts the same
        secret = (lambda: key.value) if isinstance(key, SessionKey) else key
        self.nonces = Nonces(secret, clock=clock) if settings.dpop_nonce else None
        self._clock = clock

    async def check(self, request: Request) -> str | None:
        """The thumbprint of the proof's key, or None without a proof; OAuthError if invalid."""
        try:
            value = one_header(request.headers.getlist("dpop"))
            if value is None:
                return None
            proof = check_proof(
                value,
                method="POST",
                url=self.url,
                algorithms=self.algorithms,
                nonce_ok=self.nonces.valid if self.nonces else None,
                new_nonce=self.nonces.current if self.nonces else None,
                clock=self._clock,
            )
        except NonceRequired as exc:
            raise UseDpopNonce(exc.description, exc.nonce) from None
        except InvalidProof as exc:
            raise InvalidDpopProof(exc.description) from None
        if not await self._first_use(proof.replay_key(), int(proof.expires_at()) + 1):
            raise InvalidDpopProof("This DPoP proof was already used (RFC 9449 11.1)")
        return proof.jkt

    async def _first_use(self, key: str, expires_at: int) -> bool:
        """Record the proof; an unexpired row with the same key is a replay."""
        moment = int(self._clock())
        claim = (
            self.db.insert(DpopProof)
            .values(key=key, expires_at=expires_at)
            .on_conflict_do_update(  # one statement: two instances cannot both claim it
                index_elements=[DpopProof.key],
                set_={"expires_at": expires_at},
                where=DpopProof.expires_at < moment,
            )
            .returning(DpopProof.key)
        )
        async with self.db.write() as session:
            return (await session.execute(claim)).first() is not None

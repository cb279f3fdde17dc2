"""Keys that sign JWT access tokens (RFC 9068, RFC 7517): generated, published ahead, retired.

Each key is published in the JWKS from the moment it exists and signs from its `activates_at`:
a rotation adds a key that activates `publish_ahead` seconds later, so every resource server
that caches the JWKS (for at most `jwks_max_age`) knows it before the first token it signs. A
key stops signing when its successor activates, and stays published for `retire_after` more
seconds (the longest access-token lifetime, plus the time instances take to notice the rotation,
plus clock skew): until every token it signed has expired. Then it is dropped at the next
rotation. The key ids are RFC 7638 thumbprints.

Keys live behind `KeyStore`: a 0600 file in the data folder (`FileKeyStore`), or, with a
database URL, one row of the shared database (`shared_secrets.DatabaseKeyStore`), so that every
instance signs with the same keys and publishes the same JWKS.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from joserfc.jwk import ECKey

from secure_mcp.common.private_files import (
    UnsafePathError,
    check_private_file,
    read_private_json,
    write_private_json,
)

KEYS_FILE = "signing-keys.json"
ALGORITHM = "ES256"  # RFC 7518 3.4: ECDSA P-256 SHA-256
CURVE = "P-256"
CLOCK_SKEW = 60  # seconds of clock difference between instances and resource servers
PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Change = Callable[[list["StoredKey"]], list["StoredKey"]]


class KeyStoreError(Exception):
    """The stored keys cannot be read or written; the message is one line naming the fix."""


@dataclass(frozen=True)
class StoredKey:
    """One signing key: its private JWK, when it was made and from when it signs."""

    kid: str
    jwk: dict[str, Any] = field(repr=False, compare=False)
    created_at: int
    activates_at: int

    def public(self) -> dict[str, Any]:
        """The public JWK (RFC 7517 4): never `d`, always `kid`, `use` and `alg`."""
        public = {name: self.jwk[name] for name in PUBLIC_MEMBERS}
        return {**public, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def signing_key(self) -> ECKey:
        """The private key for joserfc."""
        return ECKey.import_key(self.jwk)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kid": self.kid,
            "created_at": self.created_at,
            "activates_at": self.activates_at,
            "jwk": self.jwk,
        }

    @classmethod
    def from_json(cls, data: Any) -> StoredKey:
        """Parse the stored form; KeyStoreError naming what is wrong."""
        if not isinstance(data, dict):
            raise KeyStoreError("a key entry is not a JSON object")
        kid, jwk = data.get("kid"), data.get("jwk")
        created, activates = data.get("created_at"), data.get("activates_at")
        if not isinstance(kid, str) or not kid or not isinstance(jwk, dict):
            raise KeyStoreError("a key entry has no kid or jwk")
        if not isinstance(created, int) or not isinstance(activates, int):
            raise KeyStoreError(f"key {kid} has no created_at or activates_at")
        try:
            key = ECKey.import_key(jwk)
        except Exception as exc:  # joserfc raises several kinds for a bad JWK
            raise KeyStoreError(f"key {kid} is not a usable EC key ({exc})") from None
        if not key.is_private or jwk.get("crv") != CURVE or key.thumbprint() != kid:
            raise KeyStoreError(f"key {kid} is not a private P-256 key with that thumbprint")
        return cls(kid=kid, jwk=dict(jwk), created_at=created, activates_at=activates)


def new_key(now: int, activates_at: int) -> StoredKey:
    """A fresh P-256 key (from the `cryptography` package, through joserfc)."""
    key = ECKey.generate_key(CURVE, private=True)
    jwk = key.as_dict(private=True)
    return StoredKey(kid=key.thumbprint(), jwk=jwk, created_at=now, activates_at=activates_at)


@dataclass(frozen=True)
class Schedule:
    """When keys sign and when they are published."""

    publish_ahead: int  # a new key is published this long before it signs
    retire_after: int  # a superseded key stays published this long after its successor signs

    def signing(self, keys: Sequence[StoredKey], now: float) -> StoredKey | None:
        """The key that signs at `now`: the one activated last (None before any activates)."""
        active = [k for k in keys if k.activates_at <= now]
        return max(active, key=_order) if active else None

    def retires_at(self, key: StoredKey, keys: Sequence[StoredKey]) -> int | None:
        """When `key` leaves the JWKS: `retire_after` past its successor's activation."""
        later = [k.activates_at for k in keys if _order(k) > _order(key)]
        return min(later) + self.retire_after if later else None

    def published(self, keys: Sequence[StoredKey], now: float) -> list[StoredKey]:
        """Keys in the JWKS at `now`: pending, signing, and superseded but not yet retired."""
        kept = []
        for key in sorted(keys, key=_order):
            retires = self.retires_at(key, keys)
            if retires is None or now < retires:
                kept.append(key)
        return kept

    def ensured(self, keys: list[StoredKey], now: int) -> list[StoredKey]:
        """`keys`, plus a key that signs at once when none would (the very first start)."""
        if self.signing(keys, now) is not None:
            return keys
        return [*keys, new_key(now, now)]

    def rotated(self, keys: list[StoredKey], now: int) -> list[StoredKey]:
        """A new key published now, signing after `publish_ahead`; retired keys dropped."""
        kept = self.published(self.ensured(keys, now), now)
        return [*kept, new_key(now, now + self.publish_ahead)]


def _order(key: StoredKey) -> tuple[int, int, str]:
    """Keys in activation order (creation, then kid, break ties)."""
    return (key.activates_at, key.created_at, key.kid)


def parse_keys(document: Any, where: str) -> list[StoredKey]:
    """The keys of a stored `{"keys": [...]}` document; KeyStoreError naming `where`."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyStoreError(f"{where} has no list of keys; restore it or delete it")
    try:
        return [StoredKey.from_json(entry) for entry in entries]
    except KeyStoreError as exc:
        raise KeyStoreError(f"{where}: {exc}; restore it or delete it") from None


def keys_document(keys: Sequence[StoredKey]) -> dict[str, Any]:
    """The stored form of `keys`."""
    return {"keys": [key.to_json() for key in keys]}


class KeyStore(Protocol):
    """Where the signing keys live; every instance of oauth.py must see the same ones."""

    where: str  # named in messages

    async def load(self) -> list[StoredKey]:
        """The stored keys ([] when none)."""
        ...

    async def update(self, change: Change) -> list[StoredKey]:
        """Apply `change` to the stored keys atomically (no other update in between)."""
        ...


class FileKeyStore:
    """`signing-keys.json` (0600) in the data folder; updates hold a lock on the folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / KEYS_FILE
        self.where = str(self.path)

    def read(self) -> list[StoredKey]:
        """The keys in the file, checked ([] when there is no file); KeyStoreError otherwise."""
        try:
            check_private_file(self.path)
            if not self.path.exists():
                return []
            document = read_private_json(self.path)
        except (UnsafePathError, ValueError, OSError) as exc:
            raise KeyStoreError(f"cannot read {self.path}: {exc}") from None
        return parse_keys(document, str(self.path))

    async def load(self) -> list[StoredKey]:
        return self.read()

    async def update(self, change: Change) -> list[StoredKey]:
        folder = os.open(self.data_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)  # the `keys rotate` command and a server starting
            keys = self.read()
            changed = change(keys)
            if changed != keys:
                write_private_json(self.path, keys_document(changed))
            return changed
        finally:
            os.close(folder)  # releases the lock


class SigningKeys:
    """The keys as one running server sees them: re-read every `reload_interval` seconds."""

    def __init__(self, store: KeyStore, schedule: Schedule, clock: Clock = time.time) -> None:
        self.store = store
        self.schedule = schedule
        self._clock = clock
        self._keys: list[StoredKey] = []
        self._imported: dict[str, ECKey] = {}

    async def start(self) -> None:
        """Load the keys, creating the first one when there is none."""
        now = int(self._clock())
        self._keys = await self.store.update(lambda keys: self.schedule.ensured(keys, now))

    async def reload(self) -> None:
        """Pick up a rotation made by the `keys rotate` command or another instance."""
        try:
            keys = await self.store.load()
        except KeyStoreError as exc:
            logger.error("signing keys not reloaded, the ones in memory stay: %s", exc)
            return
        if self.schedule.signing(keys, self._clock()) is None:
            logger.error("the stored signing keys have none that signs now; keeping the old ones")
            return
        self._keys = keys

    def current(self) -> tuple[str, ECKey]:
        """The kid and private key that sign now."""
        key = self.schedule.signing(self._keys, self._clock())
        if key is None:
            raise RuntimeError("no signing key: the key store is loaded when the server starts")
        if key.kid not in self._imported:
            self._imported = {key.kid: key.signing_key()}  # only the signing one is kept
        return key.kid, self._imported[key.kid]

    def jwks(self) -> dict[str, Any]:
        """RFC 7517 5: the JWK Set of every published key, public members only."""
        published = self.schedule.published(self._keys, self._clock())
        return {"keys": [key.public() for key in published]}

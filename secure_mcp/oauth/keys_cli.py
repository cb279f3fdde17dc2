"""`oauth.py keys list|rotate`: show the JWT signing keys, or rotate them (RFC 7517 key rollover).

A rotation adds a key that is published at once and signs after the publish-ahead interval;
running servers pick it up within their reload interval. The old key stops signing then and
stays published until the tokens it signed have expired; the next rotation drops it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from secure_mcp.common.private_files import check_private_dir
from secure_mcp.oauth.app import database, key_schedule, key_store
from secure_mcp.oauth.settings import OAuthSettings, settings_from
from secure_mcp.oauth.signing_keys import Schedule, StoredKey

USAGE = "usage: oauth.py keys {list,rotate} [oauth.py's flags, e.g. --data-dir DIR]"
Clock = Callable[[], float]
Write = Callable[[str], None]


def moment(seconds: float) -> str:
    """A Unix time as readable UTC."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe(keys: Sequence[StoredKey], schedule: Schedule, now: float) -> list[str]:
    """One line per key: signing, pending (with when it signs) or retiring (until when)."""
    signing = schedule.signing(keys, now)
    lines = []
    for key in sorted(keys, key=lambda k: (k.activates_at, k.created_at)):
        retires = schedule.retires_at(key, keys)
        if key.activates_at > now:
            state = (
                f"published, signs from {moment(key.activates_at)} "
                f"(in {key.activates_at - int(now)} s)"
            )
        elif key is signing:
            state = f"signing since {moment(key.activates_at)}"
        elif retires is not None and now < retires:
            state = f"retiring: no longer signs, published until {moment(retires)}"
        else:
            state = "retired: no longer published (dropped at the next rotation)"
        lines.append(f"  {key.kid}  {state}")
    return lines


def main(
    argv: Sequence[str], env: Mapping[str, str], clock: Clock = time.time, write: Write = print
) -> int:
    """Run `list` or `rotate`; settings as oauth.py reads them (SettingsError, OSError escape)."""
    if not argv or argv[0] not in {"list", "rotate"}:
        print(USAGE, file=sys.stderr)
        return 2
    settings = settings_from(argv[1:], env)
    check_private_dir(settings.data_dir)  # ours and unshared, as when serving
    return asyncio.run(_run(argv[0], settings, int(clock()), write))


async def _run(command: str, settings: OAuthSettings, now: int, write: Write) -> int:
    """List or rotate the keys where the server keeps them (file, or the shared database)."""
    db = database(settings)
    try:
        if settings.database_url is not None:
            await db.migrate()  # the same schema the servers use (a newer one is refused)
        store, schedule = key_store(settings, db), key_schedule(settings)
        if command == "rotate":
            keys = await store.update(lambda stored: schedule.rotated(stored, now))
            new = keys[-1]
            write(
                f"New signing key {new.kid}: published now, signs from "
                f"{moment(new.activates_at)} (in {schedule.publish_ahead} s). Running servers "
                f"pick it up within {settings.signing_key_reload:g} s; the key it replaces stays "
                f"published until {schedule.retire_after} s after that, when its last tokens "
                "have expired."
            )
        else:
            keys = await store.load()
    finally:
        await db.close()
    write(f"Signing keys in {store.where} (now {moment(now)}):")
    for line in describe(keys, schedule, now) or ["  (none yet: oauth.py makes one at start)"]:
        write(line)
    return 0

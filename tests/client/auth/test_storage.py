"""The private token store: keyed by issuer and resource, never half-written, never guessed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken

from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage, StorageError

RESOURCE = "http://127.0.0.1:8000/mcp"
ISSUER = "http://127.0.0.1:9000"


def metadata(issuer: str = ISSUER) -> OAuthMetadata:
    return OAuthMetadata.model_validate(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
        }
    )


async def test_tokens_round_trip_under_issuer_and_resource(tmp_path: Path) -> None:
    storage = FileTokenStorage(tmp_path / "state", RESOURCE)
    assert await storage.get_tokens() is None
    assert await storage.get_client_info() is None
    assert storage.discovered() is None
    storage.bind(ISSUER, metadata(), None)
    await storage.set_tokens(OAuthToken(access_token="a", expires_in=60, refresh_token="r"))
    await storage.set_client_info(OAuthClientInformationFull(client_id="c1", issuer=ISSUER))

    again = FileTokenStorage(tmp_path / "state", RESOURCE)
    tokens = await again.get_tokens()
    assert tokens is not None
    assert tokens.access_token == "a"
    client = await again.get_client_info()
    assert client is not None
    assert client.client_id == "c1"
    expires_at = again.expires_at()
    assert expires_at is not None
    discovered = again.discovered()
    assert discovered is not None
    assert discovered[0] == ISSUER
    assert discovered[2] is None
    path = tmp_path / "state" / STATE_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "FileTokenStorage(" in repr(again)
    assert "'a'" not in repr(again)


async def test_another_resource_sees_nothing(tmp_path: Path) -> None:
    storage = FileTokenStorage(tmp_path, RESOURCE)
    storage.bind(ISSUER, metadata(), None)
    await storage.set_tokens(OAuthToken(access_token="a"))
    other = FileTokenStorage(tmp_path, "http://127.0.0.1:8001/mcp")
    assert await other.get_tokens() is None
    assert other.all_tokens() == []
    assert not other.delete_tokens()
    assert storage.expires_at() is None  # no expires_in


async def test_client_credentials_are_per_issuer(tmp_path: Path) -> None:
    storage = FileTokenStorage(tmp_path, RESOURCE)
    storage.bind(ISSUER, metadata(), None)
    await storage.set_client_info(OAuthClientInformationFull(client_id="c1", issuer=ISSUER))
    other_issuer = "http://127.0.0.1:9001"
    storage.current_issuer = lambda: other_issuer
    assert await storage.get_client_info() is None
    assert storage.server(other_issuer) == (None, None)


async def test_nothing_is_stored_without_an_issuer(tmp_path: Path) -> None:
    storage = FileTokenStorage(tmp_path, RESOURCE)
    with pytest.raises(StorageError):
        await storage.set_tokens(OAuthToken(access_token="a"))
    with pytest.raises(StorageError):
        await storage.set_client_info(OAuthClientInformationFull(client_id="c1"))


@pytest.mark.parametrize("content", ["not json", "[]", '{"resources": {}}'])
def test_malformed_file_is_an_error(tmp_path: Path, content: str) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(StorageError):
        FileTokenStorage(tmp_path, RESOURCE).issuer()


def test_resource_entry_without_server_metadata(tmp_path: Path) -> None:
    entry = {"issuer": "x", "authorization_server": "x"}
    state = {"resources": {RESOURCE: entry}, "servers": {}, "tokens": {}}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    assert FileTokenStorage(tmp_path, RESOURCE).discovered() is None


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
async def test_a_state_folder_that_cannot_be_made_is_one_line() -> None:
    storage = FileTokenStorage(Path("/proc/self/secure-mcp-state"), RESOURCE)
    storage.current_issuer = lambda: "http://as"
    with pytest.raises(StorageError, match=r"^cannot lock /proc/self/secure-mcp-state/"):
        await storage.set_tokens(OAuthToken(access_token="a"))


async def test_the_refresh_lock_is_exclusive_and_given_up_after_a_while(tmp_path: Path) -> None:
    storage = FileTokenStorage(tmp_path, RESOURCE)
    held = await storage.refresh_lock(1.0)
    assert held is not None
    other = FileTokenStorage(tmp_path, RESOURCE)  # another process, as far as flock is concerned
    assert await other.refresh_lock(0.1) is None  # a stuck holder: the caller goes on
    held.release()
    held.release()  # idempotent
    again = await other.refresh_lock(0.1)
    assert again is not None
    again.release()


async def test_forgetting_a_registration_keeps_other_clients(tmp_path: Path) -> None:
    mine = FileTokenStorage(tmp_path, RESOURCE)
    theirs = FileTokenStorage(tmp_path, "http://127.0.0.1:8001/mcp")
    mine.bind(ISSUER, metadata(), None)
    theirs.bind(ISSUER, metadata(), None)
    pre = OAuthClientInformationFull(client_id="pre-registered", issuer=ISSUER)
    gone = OAuthClientInformationFull(client_id="gone", issuer=ISSUER)
    await mine.set_client_info(OAuthClientInformationFull(client_id="newer", issuer=ISSUER))
    theirs.current_client = lambda: pre
    await theirs.set_tokens(OAuthToken(access_token="kept"))
    mine.current_client = lambda: gone
    await mine.set_tokens(OAuthToken(access_token="dropped"))
    mine.forget_registration(ISSUER, "gone")
    assert mine.registration(ISSUER) is not None  # another registration: kept
    assert await mine.get_tokens() is None
    assert await theirs.get_tokens() == OAuthToken(access_token="kept")


async def test_a_state_file_that_cannot_be_written_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("secure_mcp.client.auth.storage.write_private_json", full)
    storage = FileTokenStorage(tmp_path / "state", RESOURCE)
    storage.current_issuer = lambda: "http://as"
    with pytest.raises(StorageError, match=r"^cannot write .*No space left on device"):
        await storage.set_tokens(OAuthToken(access_token="a"))

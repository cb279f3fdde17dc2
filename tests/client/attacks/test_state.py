"""The state folder: ours alone, no file followed through a link, any damage one line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from secure_mcp.client.auth.storage import STATE_FILE, FileTokenStorage, StorageError
from secure_mcp.client.chat.prompt import history_path, terminal_reader
from tests.support.client_fakes import RS_ORIGIN, RS_URL, FakeAuthServer
from tests.support.hostile import HostileMcp
from tests.support.hostile_world import World

NOBODY = 65534


def _signing_in(tmp_path: Path) -> World:
    fake_as = FakeAuthServer()
    world = World(tmp_path / "state", fake_as=fake_as)
    world.mcp = HostileMcp(auth=fake_as)
    world.router.transports[RS_ORIGIN] = world.mcp  # type: ignore[assignment]
    return world


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_folder_others_can_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another user could have planted an `oauth-state.json` there (a token endpoint of theirs)."""
    world = _signing_in(tmp_path)
    world.state_dir.mkdir()
    world.state_dir.chmod(0o777)
    assert world.run("--call", "get_alerts", "{}") == 1
    assert _mode(world.state_dir) == 0o777  # refused, not silently changed
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"Error: cannot read {world.state_dir / STATE_FILE}: the folder ")
    assert "is writable by other users (mode 0777)" in last
    assert f"chmod go-w {world.state_dir}" in last
    assert world.browser.opened == []


def test_a_state_file_others_can_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    assert world.run("--call", "get_alerts", "{}") == 0
    state = world.state_dir / STATE_FILE
    state.chmod(0o666)
    assert world.run("--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert f"the file {state} is writable by other users (mode 0666)" in last


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
@pytest.mark.parametrize("what", ["folder", "file"])
def test_another_users_folder_or_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    world = _signing_in(tmp_path)
    assert world.run("--call", "get_alerts", "{}") == 0
    target = world.state_dir if what == "folder" else world.state_dir / STATE_FILE
    os.chown(target, NOBODY, -1)
    assert world.run("--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("Error: ")
    assert "belongs to another user (uid 65534)" in last


def test_a_state_file_that_is_a_link_is_not_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    elsewhere = tmp_path / "planted.json"
    elsewhere.write_text(json.dumps({"resources": {}, "servers": {}, "tokens": {}}))
    world.state_dir.mkdir(mode=0o700)
    (world.state_dir / STATE_FILE).symlink_to(elsewhere)
    assert world.run("--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == (
        f"Error: cannot read {world.state_dir / STATE_FILE}: "
        f"the file {world.state_dir / STATE_FILE} is a symbolic link; not followed"
    )
    assert world.browser.opened == []
    assert json.loads(elsewhere.read_text()) == {"resources": {}, "servers": {}, "tokens": {}}


async def test_prompt_history_is_never_written_through_a_link(tmp_path: Path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("# mine\n")
    history = history_path(tmp_path / "state")
    history.parent.mkdir(mode=0o700)
    history.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        terminal_reader(history, term_input=None, term_output=DummyOutput())
    assert victim.read_text() == "# mine\n"


async def test_a_history_file_swapped_for_a_link_later_is_not_written(tmp_path: Path) -> None:
    victim = tmp_path / "bashrc"
    victim.write_text("# mine\n")
    history = history_path(tmp_path / "state")
    with create_pipe_input() as pipe:
        read = terminal_reader(history, term_input=pipe, term_output=DummyOutput())
        history.unlink()
        history.symlink_to(victim)
        pipe.send_text("a secret question\r")
        with contextlib.suppress(OSError):  # prompt_toolkit may report it or log it
            await read("> ")
    assert victim.read_text() == "# mine\n"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
ISSUER = "http://127.0.0.1:9000"
SHAPED = st.fixed_dictionaries(
    {
        "resources": st.dictionaries(st.sampled_from([RS_URL, "x"]), JSON, max_size=2)
        | st.fixed_dictionaries(
            {
                RS_URL: st.fixed_dictionaries(
                    {"issuer": st.just(ISSUER) | JSON},
                    optional={
                        "authorization_server": JSON | st.just(ISSUER),
                        "resource_metadata": JSON,
                    },
                )
            }
        ),
        "servers": st.dictionaries(st.just(ISSUER) | st.text(max_size=3), JSON, max_size=2)
        | st.fixed_dictionaries(
            {ISSUER: st.fixed_dictionaries({}, optional={"metadata": JSON, "client": JSON})}
        ),
        "tokens": st.dictionaries(st.just(ISSUER), JSON, max_size=2)
        | st.fixed_dictionaries(
            {
                ISSUER: st.fixed_dictionaries(
                    {RS_URL: JSON | st.fixed_dictionaries({"token": JSON, "expires_at": JSON})}
                )
            }
        ),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=JSON | SHAPED)
def test_a_state_file_of_any_shape_is_one_error_or_works(
    document: Any, tmp_path_factory: Any
) -> None:
    folder = tmp_path_factory.mktemp("state")
    (folder / STATE_FILE).write_text(json.dumps(document))
    storage = FileTokenStorage(folder, RS_URL)
    storage.current_issuer = lambda: ISSUER

    async def every_reader() -> None:
        await storage.get_tokens()
        await storage.get_client_info()
        storage.issuer()
        storage.expires_at()
        storage.discovered()
        storage.all_tokens()
        storage.server(ISSUER)
        storage.delete_tokens()

    failure: StorageError | None = None
    try:
        asyncio.run(every_reader())
    except StorageError as exc:  # the only exception allowed: one line, saying what to do
        failure = exc
    if failure is not None:
        assert "\n" not in str(failure)
        assert str(failure).startswith(f"{folder / STATE_FILE} is malformed (")


def test_a_state_file_that_is_not_a_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    (world.state_dir / STATE_FILE).mkdir(parents=True)
    world.state_dir.chmod(0o700)
    assert world.run("--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"Error: cannot read {world.state_dir / STATE_FILE}: ")
    assert last.endswith(f"the file {world.state_dir / STATE_FILE} is not a regular file")


def test_a_state_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = _signing_in(tmp_path)
    world.state_dir.write_text("a file where the folder should be")
    assert world.run("--call", "get_alerts", "{}") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("Error: ")
    assert str(world.state_dir) in last


def test_a_registration_from_before_per_issuer_redirects_is_made_again(tmp_path: Path) -> None:
    world = _signing_in(tmp_path)
    assert world.run("--call", "get_alerts", "{}") == 0
    state_file = world.state_dir / STATE_FILE
    state = json.loads(state_file.read_text())
    client = state["servers"]["http://127.0.0.1:9000"]["client"]
    client["redirect_uris"] = ["http://127.0.0.1:5000/callback"]  # as stored by older clients
    state["tokens"] = {}
    state_file.write_text(json.dumps(state))
    assert world.run("--call", "get_alerts", "{}") == 0
    assert len(world.fake_as.registrations) == 2
    newest = list(world.fake_as.registrations.values())[-1]
    assert urlsplit(newest["redirect_uris"][0]).path.startswith("/callback/")

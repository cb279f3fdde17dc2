"""The trust check for state folders and the files read from them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from secure_mcp.common.private_files import (
    UnsafePathError,
    check_private_dir,
    check_private_file,
    read_owner_only,
)

OTHER_UID = 65534  # nobody


def test_a_missing_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "data"
    check_private_dir(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_an_existing_private_or_readable_folder_is_used(tmp_path: Path) -> None:
    for mode in (0o700, 0o755):
        folder = tmp_path / f"d{mode:o}"
        folder.mkdir(mode=mode)
        folder.chmod(mode)
        check_private_dir(folder, create=False)  # others may read, never write


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702, 0o720], ids=oct)
def test_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(UnsafePathError) as caught:
        check_private_dir(folder)
    message = str(caught.value)
    assert f"{folder} is writable by other users (mode {mode:04o})" in message
    assert f"chmod go-w {folder}" in message
    assert "\n" not in message
    assert stat.S_IMODE(folder.stat().st_mode) == mode  # refused, not silently changed


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
def test_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER_UID, -1)
    with pytest.raises(UnsafePathError, match=f"belongs to another user \\(uid {OTHER_UID}\\)"):
        check_private_dir(folder)


def test_a_file_instead_of_a_folder_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(UnsafePathError, match="is not a folder"):
        check_private_dir(path, create=False)
    with pytest.raises(FileNotFoundError):
        check_private_dir(tmp_path / "missing", create=False)


def test_files_are_checked_when_present(tmp_path: Path) -> None:
    check_private_file(tmp_path / "missing.json")  # nothing to trust or distrust
    path = tmp_path / "secrets.json"
    path.write_text("{}")
    path.chmod(0o600)
    check_private_file(path)
    path.chmod(0o666)
    with pytest.raises(UnsafePathError, match=r"the file .* is writable by other users"):
        check_private_file(path)
    if os.geteuid() == 0:
        path.chmod(0o600)
        os.chown(path, OTHER_UID, -1)
        with pytest.raises(UnsafePathError, match=r"the file .* belongs to another user"):
            check_private_file(path)


def test_a_secret_file_is_read_only_when_no_one_else_may_read_it(tmp_path: Path) -> None:
    secret = tmp_path / "key.pem"
    secret.write_bytes(b"0123456789")
    secret.chmod(0o600)
    assert read_owner_only(secret, 4, "key") == b"01234"  # the limit, and one byte to tell
    assert read_owner_only(secret, 100, "key") == b"0123456789"
    secret.chmod(0o640)
    with pytest.raises(UnsafePathError, match=r"the key file .* readable by other users"):
        read_owner_only(secret, 100, "key")
    link = tmp_path / "link.pem"
    link.symlink_to(secret)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_owner_only(link, 100, "key")

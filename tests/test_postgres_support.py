"""The PostgreSQL test fixture's rules: skipped without PostgreSQL, a failure under CI."""

from __future__ import annotations

import pytest

from tests.support.postgres import find_bin_dir, unavailable


def test_without_postgresql_a_test_is_skipped_with_the_reason() -> None:
    with pytest.raises(pytest.skip.Exception, match="no initdb"):
        unavailable("no initdb", {})


def test_under_ci_a_missing_postgresql_fails_the_run() -> None:
    with pytest.raises(pytest.fail.Exception, match="required under CI=true: no initdb"):
        unavailable("no initdb", {"CI": "true"})


def test_the_binaries_are_found_where_debian_puts_them() -> None:
    found = find_bin_dir()
    if found is None:
        unavailable("PostgreSQL is not installed")
    assert found is not None
    assert (found / "initdb").exists()
    assert (found / "pg_ctl").exists()

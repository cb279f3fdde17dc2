"""run_tests.py: the README's test command works from a fresh clone and outside the environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

import run_tests

ROOT = Path(__file__).resolve().parent.parent
BASE_PYTHON = Path(sys.base_prefix) / "bin" / "python3"


class Executed(Exception):
    def __init__(self, file: str, args: Sequence[str], env: Mapping[str, str]) -> None:
        super().__init__(file)
        self.file, self.argv, self.env = file, list(args), dict(env)


def fake_exec(file: str, args: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    raise Executed(file, args, env)


def test_missing_tools_rerun_through_uv_with_the_test_extra() -> None:
    with pytest.raises(Executed) as caught:
        run_tests.main(
            ["introspect"],
            env={"PATH": "/x"},
            execute=fake_exec,
            which=lambda _: "/bin/uv",
            find_missing=lambda: ["pytest_cov"],
        )
    assert caught.value.file == "/bin/uv"
    assert caught.value.argv[:6] == ["/bin/uv", "run", "--project", str(ROOT), "--extra", "test"]
    assert caught.value.argv[-1] == "introspect"
    assert caught.value.env == {"PATH": "/x", run_tests.REEXEC_GUARD: "1"}


@pytest.mark.parametrize(
    ("env", "uv"),
    [({}, None), ({run_tests.REEXEC_GUARD: "1"}, "/bin/uv")],
    ids=["no-uv", "second-attempt"],
)
def test_without_a_way_to_install_it_says_how_in_one_line(
    env: dict[str, str], uv: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_tests.main(
        [], env=env, execute=fake_exec, which=lambda _: uv, find_missing=lambda: ["pytest_cov"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert "pytest_cov" in err
    assert "uv run python run_tests.py" in err


def test_a_selection_turns_the_coverage_floor_off() -> None:
    assert run_tests.build_args(["a", "b"])[-3:] == ["-k", "a or b", "--cov-fail-under=0"]
    assert run_tests.build_args([])[-1] == f"--cov-fail-under={run_tests.COVERAGE_FLOOR}"


def _base_python_lacks_the_tools() -> bool:
    probe = [str(BASE_PYTHON), "-c", "import pytest_cov"]
    return BASE_PYTHON.exists() and subprocess.run(probe, capture_output=True).returncode != 0


@pytest.mark.process
@pytest.mark.skipif(not _base_python_lacks_the_tools(), reason="no interpreter without the tools")
def test_plain_python_without_uv_prints_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = "/nonexistent"
    done = subprocess.run(
        [str(BASE_PYTHON), "run_tests.py"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("run_tests.py: the test tools are not installed here")
    assert "unrecognized arguments" not in done.stderr


@pytest.mark.process
@pytest.mark.skipif(not _base_python_lacks_the_tools(), reason="no interpreter without the tools")
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_plain_python_reruns_itself_through_uv() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    # The rerun is what this proves, not a collection of the whole suite: one small module.
    env["PYTEST_ADDOPTS"] = "tests/test_run_tests.py"
    done = subprocess.run(
        [str(BASE_PYTHON), "run_tests.py", "zz_no_test_has_this_name"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 5, done.stdout[-2000:] + done.stderr[-2000:]  # nothing selected
    assert "deselected" in done.stdout

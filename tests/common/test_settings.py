"""The settings helper: readers, flags over environment over defaults, `.env`, failures, banners."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from secure_mcp.common.settings import (
    Option,
    Options,
    SettingsError,
    boolean,
    fail,
    integer,
    load_env_file,
    number,
    path,
    show,
    words,
)

OPTIONS = Options(
    (
        Option("--name", "T_NAME", "a name (T_NAME)", default="anon"),
        Option("--port", "T_PORT", "a port (T_PORT)", integer, 80, flag_type=int),
        Option("--file", "T_FILE", "a file (T_FILE)", path),
        Option("--on", "T_ON", "a switch (T_ON)", switch=True),
        Option("--item", "T_ITEMS", "repeatable (T_ITEMS)", words, repeat=True),
        Option("--mode", None, "a choice", choices=("a", "b"), group="modes"),
        Option("--other", None, "another", group="modes", metavar="X"),
        Option(None, "T_SECRET"),
    )
)


def values(argv: list[str], env: dict[str, str]) -> dict[str, object]:
    parser = OPTIONS.add_to(argparse.ArgumentParser(prog="t.py", epilog=OPTIONS.epilog()))
    return OPTIONS.values(parser.parse_args(argv), env)


def test_defaults_when_neither_flag_nor_variable() -> None:
    assert values([], {"T_PORT": ""}) == {
        "name": "anon",
        "port": 80,
        "file": None,
        "on": None,
        "item": None,
        "mode": None,
        "other": None,
        "t_secret": None,
    }


def test_flags_win_over_the_environment() -> None:
    env = {"T_NAME": "env", "T_PORT": "81", "T_ON": "0", "T_ITEMS": "x y", "T_SECRET": "s"}
    got = values(["--name", "flag", "--port", "0", "--on", "--item", "a b", "--item", "c"], env)
    assert got["name"] == "flag"
    assert got["port"] == 0  # a flag of 0 is a value, not "unset"
    assert got["on"] is True
    assert got["item"] == ("a b", "c")  # each flag one item, as given
    assert got["t_secret"] == "s"


def test_the_environment_is_read_with_the_declared_reader() -> None:
    env = {"T_PORT": "81", "T_FILE": "~/x", "T_ON": "yes", "T_ITEMS": "a, b c"}
    got = values(["--file", "~/y"], env)
    assert got["port"] == 81
    assert got["file"] == Path("~/y").expanduser()
    assert got["on"] is True
    assert got["item"] == ("a", "b", "c")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"T_PORT": "x"}, "T_PORT must be a number, got 'x'", id="integer"),
        pytest.param({"T_ON": "maybe"}, "T_ON must be 1 or 0: 'maybe'", id="boolean"),
    ],
)
def test_a_bad_variable_names_itself(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        values([], env)
    assert str(caught.value) == message


def test_readers() -> None:
    assert number("1.5", "N") == 1.5
    with pytest.raises(SettingsError, match=r"^N must be a number, got 'soon'$"):
        number("soon", "N")
    assert [boolean(w, "B") for w in ("1", "TRUE", " on", "0", "", "off")] == [True] * 3 + [
        False
    ] * 3
    assert words(" a,,b ", "W") == ("a", "b")


def test_help_lists_flags_groups_and_the_variables_without_a_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        values(["--help"], {})
    out = capsys.readouterr().out
    assert "modes:" in out
    assert "--other X" in out
    assert out.rstrip().endswith("Environment only (or .env next to the script): T_SECRET")
    assert OPTIONS.env_names() == ["T_NAME", "T_PORT", "T_FILE", "T_ON", "T_ITEMS", "T_SECRET"]


def test_environment_reads_only_the_env_file_next_to_the_script(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("A=from-file\nB=from-file\nC\n")
    (tmp_path / "sub").mkdir()
    script = tmp_path / "prog.py"
    env = {"B": "from-env"}
    assert load_env_file(script, env) is env
    assert env == {"B": "from-env", "A": "from-file"}
    assert load_env_file(tmp_path / "sub" / "prog.py", {"B": "x"}) == {"B": "x"}  # no parent


def test_fail_prints_one_line_and_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert fail("prog.py", SettingsError("bad value")) == 2
    assert capsys.readouterr().err == "prog.py: bad value\n"


def test_show_prints_each_line(capsys: pytest.CaptureFixture[str]) -> None:
    show(["one", "two"])
    assert capsys.readouterr().out == "one\ntwo\n"

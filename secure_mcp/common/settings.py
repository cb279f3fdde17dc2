"""Flags over environment over `.env`: the one settings helper of oauth.py, weather.py, client.py.

Each program declares its options once (`Option`: flag, environment variable, reader, default,
help); its parser, its `--help` and the list of its environment variables come from there.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

Reader = Callable[[str, str], Any]  # (text, the flag or variable it came from) -> value
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})


class SettingsError(ValueError):
    """A flag, environment variable or start-up check failed: `<program>: <message>`, exit 2."""


def text(value: str, name: str) -> str:
    """The value as given."""
    return value


def number(value: str, name: str) -> float:
    """A number of seconds or bytes, or SettingsError naming where it came from."""
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None


def integer(value: str, name: str) -> int:
    """A whole number, or SettingsError naming where it came from."""
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None


def boolean(value: str, name: str) -> bool:
    """1/true/yes/on or 0/false/no/off (empty is off); anything else is a SettingsError."""
    word = value.strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{name} must be 1 or 0: {value!r}")


def path(value: str, name: str) -> Path:
    """A file or folder, `~` expanded."""
    return Path(value).expanduser()


def words(value: str, name: str) -> tuple[str, ...]:
    """Items of a space- or comma-separated list."""
    return tuple(item for item in re.split(r"[\s,]+", value) if item)


@dataclass(frozen=True)
class Option:
    """One setting, declared once: flag and/or environment variable, reader, default, help."""

    flag: str | None
    env: str | None
    help: str | None = None
    read: Reader = text
    default: Any = None
    switch: bool = False  # a flag without value; its variable is read with `boolean`
    flag_type: Callable[[str], Any] | None = None  # argparse converts the flag (int, float)
    choices: Sequence[str] | None = None
    repeat: bool = False  # the flag may be given several times
    metavar: str | None = None
    group: str | None = None  # the --help section, if not the main one

    @property
    def dest(self) -> str:
        """The name of the value: the flag's (`--data-dir` -> `data_dir`), else the variable's."""
        name = self.flag.lstrip("-") if self.flag else str(self.env).lower()
        return name.replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
        """Its flag on the parser (nothing for an environment-only setting)."""
        if self.flag is None:
            return
        if self.switch:
            parser.add_argument(self.flag, action="store_true", default=None, help=self.help)
            return
        extra: dict[str, Any] = {"help": self.help, "choices": self.choices}
        if self.metavar:
            extra["metavar"] = self.metavar
        if self.flag_type is not None:
            extra["type"] = self.flag_type
        parser.add_argument(self.flag, action="append" if self.repeat else "store", **extra)

    def value(self, args: argparse.Namespace, env: Mapping[str, str]) -> Any:
        """The flag if given, else the variable if set and not empty, else the default."""
        given = getattr(args, self.dest, None) if self.flag else None
        if given:
            if self.switch or self.flag_type is not None:
                return given
            return tuple(given) if self.repeat else self.read(given, str(self.flag))
        if given is not None and self.flag_type is not None:  # a flag of 0
            return given
        raw = env.get(self.env, "") if self.env else ""
        if not raw:
            return self.default
        return boolean(raw, str(self.env)) if self.switch else self.read(raw, str(self.env))


@dataclass(frozen=True)
class Options:
    """A program's declared settings: its parser, and the values of one run."""

    options: tuple[Option, ...]

    def add_to(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Every flag on `parser`, in declaration order, grouped as declared."""
        groups: dict[str, argparse._ArgumentGroup] = {}
        for option in self.options:
            where: argparse.ArgumentParser | argparse._ArgumentGroup = parser
            if option.group is not None:
                if option.group not in groups:
                    groups[option.group] = parser.add_argument_group(option.group)
                where = groups[option.group]
            option.add_to(where)
        return parser

    def parser(self, prog: str, description: str, **options: Any) -> argparse.ArgumentParser:
        """The program's parser: every declared flag, and the environment-only list as epilog."""
        parser = argparse.ArgumentParser(
            prog=prog, description=description, epilog=self.epilog(), **options
        )
        return self.add_to(parser)

    def values(self, args: argparse.Namespace, env: Mapping[str, str]) -> dict[str, Any]:
        """Each setting's value by `dest`: flags over environment over defaults."""
        return {option.dest: option.value(args, env) for option in self.options}

    def env_names(self) -> list[str]:
        """Every environment variable the program reads, in declaration order."""
        return [option.env for option in self.options if option.env]

    def env_only(self) -> list[str]:
        """The variables without a flag (listed at the end of --help)."""
        return [option.env for option in self.options if option.env and option.flag is None]

    def epilog(self) -> str:
        """The --help footer naming the settings that only the environment (or `.env`) sets."""
        return "Environment only (or .env next to the script): " + ", ".join(self.env_only())


def load_env_file(
    script: str | Path, environ: MutableMapping[str, str]
) -> MutableMapping[str, str]:
    """`environ` with what the `.env` next to `script` adds (never one in a parent folder).

    The environment wins over the file; the root scripts pass `os.environ`, so that the servers
    demo.py starts inherit what the file set.
    """
    for name, value in dotenv_values(Path(script).with_name(".env")).items():
        if value is not None:
            environ.setdefault(name, value)
    return environ


def fail(program: str, exc: BaseException) -> int:
    """Report a start-up failure the one way every program does: one line on stderr, status 2."""
    print(f"{program}: {exc}", file=sys.stderr)
    return 2


def show(lines: Iterable[str]) -> None:
    """Print a start-up banner (a list of lines), flushed so that logs show it at once."""
    for line in lines:
        print(line, flush=True)

"""The package docstring's index from RFC to module stays true: each module exists and cites
the RFC of its line."""

from __future__ import annotations

import re
from pathlib import Path

import secure_mcp

PACKAGE = Path(secure_mcp.__file__).parent
MODULE = re.compile(r"\b((?:oauth|weather|common|client)(?:\.[a-z_0-9]+)+)")


def _entries() -> list[str]:
    index = (secure_mcp.__doc__ or "").split("\n- ")[1:]
    return [" ".join(entry.split()) for entry in index]


def test_every_indexed_module_exists_and_cites_its_rfc() -> None:
    entries = _entries()
    assert len(entries) > 20
    for entry in entries:
        rfcs = re.findall(r"RFC (\d{4})", entry) + re.findall(r"RFC \d{4}, (\d{4})", entry)
        modules = MODULE.findall(entry)
        assert modules, entry
        for module in modules:
            path = PACKAGE / (module.replace(".", "/") + ".py")
            assert path.is_file(), f"{module} in the index does not exist"
            source = path.read_text(encoding="utf-8")
            assert not rfcs or any(f"RFC {number}" in source for number in rfcs), (
                f"{module} is indexed under RFC {'/'.join(rfcs)} but cites none of them"
            )

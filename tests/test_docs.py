"""The maintainer docs name what exists: every file, module and test they cite, and every link
between them, so a rename or a removed test shows up here instead of drifting in the docs."""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

import pytest

from tests.support.processes import ROOT

TOP = ("CLAUDE.md", "README.md", "tests/README.md", "bench/README.md")
DOCS = sorted([*(ROOT / name for name in TOP), *(ROOT / "docs").glob("*.md")])
# Names that look like tests but are not ours: the conformance suite's own fixture tool.
NOT_OURS = {"test_missing_capability"}


def _sources() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.py")
        if not {".venv", "node_modules", ".git"} & set(path.relative_to(ROOT).parts)
    ]


SOURCES = _sources()
MODULES = {path.name for path in SOURCES}
TESTS = {
    name
    for path in SOURCES
    if path.relative_to(ROOT).parts[0] == "tests"
    for name in re.findall(r"def (test_\w+)", path.read_text(encoding="utf-8"))
}


# Libraries whose names the docs cite (what we replace or work around), searched only when a name
# is not ours.
LIBRARIES = ("mcp", "anthropic", "starlette", "httpx2", "pydantic", "queue")


@functools.cache
def _our_text() -> str:
    texts = [path.read_text(encoding="utf-8") for path in SOURCES]
    texts += [(ROOT / name).read_text(encoding="utf-8") for name in (".ci/run", "pyproject.toml")]
    return "\n".join([*texts, *(path.stem for path in SOURCES)])


@functools.cache
def _library_text() -> str:
    texts = []
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        assert spec is not None, name
        assert spec.origin is not None, name
        folder = Path(spec.origin)
        files = folder.parent.rglob("*.py") if folder.name == "__init__.py" else [folder]
        texts += [path.read_text(encoding="utf-8") for path in files]
    return "\n".join(texts)


def _ids(paths: list[Path]) -> list[str]:
    return [str(path.relative_to(ROOT)) for path in paths]


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_path_cited_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    cited = set(re.findall(r"(?:tests|secure_mcp|bench)/[\w/.\-]*\w\.(?:py|yml|json|mjs)", text))
    assert sorted(path for path in cited if not (ROOT / path).exists()) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_module_cited_exists(doc: Path) -> None:
    cited = set(re.findall(r"`(\w+\.py)\b", doc.read_text(encoding="utf-8")))
    assert sorted(cited - MODULES) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_test_cited_exists(doc: Path) -> None:
    """A cited name may be a prefix (`test_sign_out_*`): some test must start with it."""
    cited = set(re.findall(r"\btest_\w+", doc.read_text(encoding="utf-8")))
    cited -= {name for name in cited if f"{name}.py" in MODULES} | NOT_OURS
    missing = [name for name in cited if not any(test.startswith(name) for test in TESTS)]
    assert sorted(missing) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_relative_link_resolves(doc: Path) -> None:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert sorted(link for link in local if not (doc.parent / link).exists()) == []


# The maintainer docs; README.md also quotes shell commands and other programs' options.
MAINTAINER_DOCS = [doc for doc in DOCS if doc != ROOT / "README.md"]


@pytest.mark.parametrize("doc", MAINTAINER_DOCS, ids=_ids(MAINTAINER_DOCS))
def test_every_name_cited_exists(doc: Path) -> None:
    """Class, function and attribute names in code (`GrantCache`, `_redirect_trusted`)."""
    text = doc.read_text(encoding="utf-8")
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    spans = blocks + re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.M | re.S))
    pattern = r"\b(?:[A-Z][a-z0-9]+[A-Z]\w*|_?[a-z][a-z0-9]*_[a-z0-9_]+)\b"
    cited = {name for span in spans for name in re.findall(pattern, span)}
    ours = _our_text()
    unknown = [name for name in cited if name not in ours]
    if unknown:
        libraries = _library_text()
        unknown = [name for name in unknown if name not in libraries]
    assert sorted(unknown) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_environment_variable_cited_is_read(doc: Path) -> None:
    """The programs' own variables (OAUTH_*, WEATHER_*, MCP_*, ...): a renamed one fails here."""
    pattern = r"\b(?:OAUTH|WEATHER|MCP|NWS|INTROSPECTION|AUTH_SERVER)_[A-Z0-9_]*[A-Z0-9]\b"
    cited = set(re.findall(pattern, doc.read_text(encoding="utf-8")))
    assert sorted(name for name in cited if name not in _our_text()) == []


@pytest.mark.parametrize("doc", DOCS, ids=_ids(DOCS))
def test_every_table_row_has_its_headers_cells(doc: Path) -> None:
    """A `|` inside a code span splits a cell on GitHub: the row then renders broken."""
    broken, cells = [], 0
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        count = len(re.findall(r"(?<!\\)\|", line)) if line.startswith("|") else 0
        if count and cells and count != cells:
            broken.append(number)
        cells = cells or count if count else 0
    assert broken == []


def test_the_sdk_upgrade_section_the_contract_test_names_exists() -> None:
    """tests/client/test_sdk_seam.py sends readers to CLAUDE.md, "Upgrading the mcp SDK"."""
    assert "\n## Upgrading the mcp SDK\n" in (ROOT / "CLAUDE.md").read_text(encoding="utf-8")

"""The one sanitiser (secure_mcp/client/terminal.py): properties over any text, and each attack."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from secure_mcp.client.terminal import Styled, Terminal, clean, clean_line, visible
from tests.support.hostile import ALL_ATTACKS, LONE_SURROGATE, TERMINAL_ATTACKS
from tests.support.hostile_world import assert_inert


@given(st.text())
def test_clean_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    cleaned = clean(text)
    assert_inert(cleaned)
    assert clean(cleaned) == cleaned  # cleaning twice changes nothing


@given(st.text())
def test_clean_line_is_one_inert_line(text: str) -> None:
    line = clean_line(text)
    assert_inert(line)
    assert "\n" not in line
    assert "\t" not in line


@given(st.text())
def test_cleaned_json_is_still_json_with_the_same_value(text: str) -> None:
    assert json.loads(clean(json.dumps({"t": text}, ensure_ascii=False))) == {"t": text}


@pytest.mark.parametrize(
    "attack", [*TERMINAL_ATTACKS.values(), LONE_SURROGATE], ids=[*TERMINAL_ATTACKS, "surrogate"]
)
def test_each_attack_is_made_visible(attack: str) -> None:
    assert_inert(clean(attack))
    assert_inert(clean_line(attack))


def test_text_and_layout_stay() -> None:
    assert clean("Forecast:\n\t64°F, wind 10 mph 🌤️\r\n") == "Forecast:\n\t64°F, wind 10 mph 🌤️\n"
    assert clean("👩\u200d💻 joins") == "👩\u200d💻 joins"  # a joiner shapes, it does not hide
    assert clean_line("a\nb\tc") == "a b c"
    assert visible("\U000e0041") == "\\udb40\\udc41"


def test_only_the_clients_own_styling_reaches_a_color_terminal() -> None:
    buffer = io.StringIO()
    terminal = Terminal(buffer, color=True)
    terminal(Styled("  ⚙ get_alerts {}\n"))
    terminal(ALL_ATTACKS)
    terminal(Styled("") + "joined: a plain str again\x1b[1m")
    output = buffer.getvalue()
    assert output.startswith("\x1b[1m  ⚙ get_alerts {}\n\x1b[0m")
    assert_inert(output.removeprefix("\x1b[1m  ⚙ get_alerts {}\n\x1b[0m"))
    plain = io.StringIO()
    Terminal(plain)(Styled("  ⚙ x\n"))
    assert plain.getvalue() == "  ⚙ x\n"

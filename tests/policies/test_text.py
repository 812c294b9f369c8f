"""The rules for text from outside (policies.text): ids and free text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.text import ID_RULE, MAX_ID_CHARS, encodable, id_problem, text_problem


@pytest.mark.parametrize("good", ["a", "A1234BC", "call-0001", "v-1a2b3c4d", "x.y_z-1", "9" * MAX_ID_CHARS])
def test_safe_ids_pass(good: str) -> None:
    assert id_problem(good) is None


@pytest.mark.parametrize(
    "bad",
    ["", ".", "..", "../v2", "a/b", "a\\b", "-flag", "_x", ".hidden", "a b", "a\x00", "é", "9" * 65, "a\n"],
)
def test_unsafe_ids_are_named_with_the_rule(bad: str) -> None:
    assert id_problem(bad) == f"must be {ID_RULE}, got {bad!r}"


def test_a_long_id_is_quoted_short() -> None:
    problem = id_problem("x" * 10_000)
    assert problem is not None and len(problem) < 200


@pytest.mark.parametrize(
    ("text", "lines", "problem"),
    [
        ("\ud800", False, "contains a lone surrogate (U+D800), which is not text"),
        ("ok \udc80 tail", True, "contains a lone surrogate (U+DC80), which is not text"),
        ("a\x00b", False, "contains a control character (U+0000)"),
        ("bell\x07", True, "contains a control character (U+0007)"),
        ("two\nlines", False, "contains a control character (U+000A)"),
        ("tab\t", False, "contains a control character (U+0009)"),
        ("del\x7f", True, "contains a control character (U+007F)"),
        ("c1\x85", False, "contains a control character (U+0085)"),
        ("esc\x1b[2J", True, "contains a control character (U+001B)"),
        ("line\u2028separator", False, "contains a line separator (U+2028)"),
        ("paragraph\u2029", True, "contains a line separator (U+2029)"),
    ],
)
def test_free_text_refuses_surrogates_and_control_characters(text: str, lines: bool, problem: str) -> None:
    assert text_problem(text, lines=lines) == problem


@pytest.mark.parametrize("text", ["", "Jane Smith", "Zoë 王芳 🙂", "getDisplayMedia", "\U0001f600"])
def test_ordinary_text_passes(text: str) -> None:
    assert text_problem(text) is None and encodable(text)


def test_lines_allow_tabs_and_line_breaks() -> None:
    assert text_problem("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n\ta=x", lines=True) is None


@given(st.text())
def test_what_the_text_rule_accepts_utf8_can_encode(text: str) -> None:
    if text_problem(text, lines=True) is None:
        text.encode("utf-8")
    assert encodable(text) == all(not 0xD800 <= ord(c) <= 0xDFFF for c in text)


def test_encodable_finds_the_surrogate_json_escapes_make() -> None:
    decoded = json.loads('"x\\ud800"')
    assert not encodable(decoded) and encodable(json.dumps(decoded))

"""docs/policy.md is what tools/policy_doc.py writes from the code now, and it leaves nothing out."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from policies.config import default_policy_text
from policies.decisions import State
from policies.session import IGNORE, ILLEGAL, TRANSITIONS, Rule
from tools import policy_doc


def test_docs_policy_md_is_current() -> None:
    written = policy_doc.OUTPUT.read_text(encoding="utf-8")
    assert written == policy_doc.render(), "docs/policy.md is out of date: run `make docs`"


def test_every_key_of_the_policy_file_is_on_the_page_with_its_default() -> None:
    page = policy_doc.render()
    for section, table in tomllib.loads(default_policy_text()).items():
        assert f"### `[{section}]`" in page
        for key, value in table.items():
            assert f"`{key}`" in page
            assert f"`{policy_doc.toml_literal(value)}`" in page, (section, key)


def test_every_transition_is_on_the_page() -> None:
    lines = policy_doc.render().splitlines()
    start = lines.index("| event | " + " | ".join(f"`{s.value}`" for s in State) + " |") + 2
    table = lines[start : lines.index("", start)]
    rows = {line.split(" | ")[0].strip("| `"): line for line in table}
    assert len(rows) == len({event_type for _, event_type in TRANSITIONS})
    for (state, event_type), rule in TRANSITIONS.items():
        cells = [c.strip() for c in rows[event_type.__name__].strip("|").split("|")][1:]
        cell = cells[list(State).index(state)]
        if rule is IGNORE:
            assert cell == "ignored"
        elif rule is ILLEGAL:
            assert cell == "**refused**"
        else:
            assert not isinstance(rule, Rule)
            assert cell == f"`{rule.__name__}`"


def test_comments_describe_the_keys_below_them() -> None:
    text = """# The file.
# Second line.

[one]
# Shared by two keys.
a_s = 1.0
b_s = 2
# Its own.
c = ["x", "y"]

# About the section below.

[two]
d = true

e = "s"
"""
    intro, sections = policy_doc.read_policy_file(text)
    assert intro == ["The file.", "Second line."]
    one, two = sections
    assert [(g.keys, g.comment) for g in one.groups] == [
        ([("a_s", 1.0), ("b_s", 2)], ["Shared by two keys."]),
        ([("c", ["x", "y"])], ["Its own."]),
    ]
    assert one.note == ["About the section below."]
    assert [(g.keys, g.comment) for g in two.groups] == [([("d", True)], []), ([("e", "s")], [])]
    assert policy_doc.toml_literal(["x", True, 0.5]) == '["x", true, 0.5]'


def test_a_value_over_several_lines_is_refused_with_its_line() -> None:
    with pytest.raises(SystemExit, match=r"line 3: cannot read '\"b\",'"):
        policy_doc.read_policy_file('[one]\nlist = [\n  "b",\n]\n')


def test_check_fails_on_a_stale_page_and_passes_once_written(tmp_path: Path) -> None:
    page = tmp_path / "docs" / "policy.md"
    assert policy_doc.main(["--check"], output=page) == 1  # missing
    page.parent.mkdir()
    page.write_text("# an old page\n", encoding="utf-8")
    assert policy_doc.main(["--check"], output=page) == 1
    assert policy_doc.main([], output=page) == 0
    assert page.read_text(encoding="utf-8") == policy_doc.render()
    assert policy_doc.main(["--check"], output=page) == 0

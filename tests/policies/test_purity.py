"""The rules core stays pure: checked on its source, so a stray import or clock read fails here
rather than as a live/replay mismatch much later."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MODULES = sorted(POLICIES.glob("*.py"))

#: the project's I/O edges, async and network, clocks, and the media stack
FORBIDDEN_IMPORTS = (
    "monitor",
    "signalling",
    "asyncio",
    "socket",
    "ssl",
    "http",
    "urllib",
    "websockets",
    "aiortc",
    "threading",
    "multiprocessing",
    "subprocess",
    "time",
    "random",
    "cv2",
    "mediapipe",
    "numpy",
    "dlib",
    "av",
)
#: wall-clock reads, whatever module they come from
CLOCK_CALLS = ("now", "utcnow", "today", "time", "monotonic", "perf_counter")


def imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def clock_calls(tree: ast.AST) -> list[str]:
    return [
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]


def test_there_are_modules_to_check() -> None:
    assert {p.name for p in MODULES} >= {"session.py", "config.py", "booking.py", "events.py"}


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_imports_no_io_edge_clock_or_media(module: Path) -> None:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    assert not imported(tree) & set(FORBIDDEN_IMPORTS), module.name
    assert not clock_calls(tree), module.name


def test_the_checks_catch_what_they_look_for() -> None:
    source = "import asyncio\nfrom monitor.call.call import Call\nimport datetime\nt = datetime.now()"
    tree = ast.parse(source)
    assert imported(tree) & set(FORBIDDEN_IMPORTS) == {"asyncio", "monitor"}
    assert clock_calls(tree) == ["datetime.now()"]

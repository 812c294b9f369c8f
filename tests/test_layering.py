"""The house rules: which room may import which, and no import cycles between project modules.

Every import counts, at the top of a module or inside a function (an import deferred to break a
cycle is still a cycle). A room is a sub-package of ``monitor`` (or a top-level module of it), or
one of the packages ``policies`` and ``signalling``. Rooms sit on floors; a room may import its own
modules and rooms on lower floors, never a room on its own floor or above. The floors follow the
data flow: the pure policy core at the bottom, then the wire messages and small shared tools, the
models and media, what runs them (worker processes, recorders, the store), one live call and
replay, the console and admin, the relay workers that host calls, the cluster of nodes (registry,
placement, routing), the server, the command line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("policies", "signalling", "monitor")

#: room -> floor. A room missing here fails the test: a new room must be given its floor.
FLOORS: dict[str, int] = {
    "policies": 0,
    "monitor.errors": 0,
    "signalling": 1,
    "monitor.inputs": 1,
    "monitor.hub": 1,
    "monitor.http": 1,
    "monitor.load": 1,
    "monitor.analysis": 2,
    "monitor.media": 2,
    "monitor.bookings": 2,
    "monitor.workers": 3,
    "monitor.record": 3,
    "monitor.store": 3,
    "monitor.call": 4,
    "monitor.replay": 4,
    "monitor.mail": 4,
    "monitor.console": 5,
    "monitor.admin": 5,
    "monitor.family": 5,
    "monitor.relay_workers": 6,
    "monitor.cluster": 7,
    "monitor.server": 8,
    "monitor.cli": 9,
}


def project_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


MODULES = project_modules()


def imports_of(name: str, path: Path) -> Iterator[str]:
    """Project modules that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: climb from the importing package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # ``from monitor.store import auth`` imports a module; ``from x import name``, the module x
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            # the longest project module the target names (``from monitor.store import auth``: the module)
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: sorted(set(imports_of(name, path))) for name, path in MODULES.items()}


def room_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "monitor":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "monitor"


def test_every_room_has_a_floor() -> None:
    rooms = {room_of(m) for m in MODULES} - {"monitor"}
    assert sorted(rooms - set(FLOORS)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module: str) -> None:
    room = room_of(module)
    if room == "monitor":  # monitor/__init__.py
        return
    wrong = [
        target
        for target in GRAPH[module]
        if room_of(target) != room and FLOORS.get(room_of(target), 99) >= FLOORS[room]
    ]
    assert wrong == [], f"{module} (floor {FLOORS[room]}) imports {wrong}"


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components; any component of two or more modules is a cycle
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_the_graph_is_read() -> None:
    """The test sees real edges (a parser that found none would pass everything above)."""
    assert "policies.session" in GRAPH["monitor.call.call"]
    assert "monitor.store.database" in GRAPH["monitor.store.audit"]


def test_rooms_stay_small() -> None:
    """No module over 500 lines, and at most 12 modules directly in ``monitor/``: a module that
    grows past that is split along what it does, and new work gets a room of its own."""
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 500}
    assert long == {}
    top = sorted(p.name for p in (ROOT / "monitor").glob("*.py"))
    assert len(top) <= 12, top

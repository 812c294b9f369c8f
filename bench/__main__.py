"""``python -m bench [NAME ...]``: run every benchmark module (or the named ones), print tables.

``python -m bench NAME --help`` shows that benchmark's own options.

See :mod:`bench` for what a benchmark module is. Each runs in a child process with one thread per
math library; results go to ``bench/results/<name>.json``. Exit status is non-zero when any
benchmark failed (the others still run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import RESULTS, ROOT, THREAD_VARS, discover


def _flatten(prefix: str, value: Any, rows: list[list[Any]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, rows)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        rows.append([prefix, value, ""])


def table_rows(data: dict[str, Any]) -> list[list[Any]]:
    table = data.get("table")
    if isinstance(table, list) and all(isinstance(r, list) and len(r) == 3 for r in table):
        return table
    rows: list[list[Any]] = []
    _flatten("", {k: v for k, v in data.items() if k != "machine"}, rows)
    return rows


def print_table(name: str, rows: list[list[Any]]) -> None:
    cells = [[str(a), f"{b:g}" if isinstance(b, float) else str(b), str(c)] for a, b, c in rows]
    width = max([len(c[0]) for c in cells] + [len(name)])
    value_width = max([len(c[1]) for c in cells] + [5])
    print(f"\n== {name}")
    for what, value, unit in cells:
        print(f"  {what:<{width}}  {value:>{value_width}}  {unit}")


def main(argv: list[str]) -> int:
    known = discover()
    if any(a in ("-h", "--help") for a in argv):
        named = [a for a in argv if a in known]
        if named:  # each named benchmark's own options
            helps = [[sys.executable, "-m", f"bench.{n}", "--help"] for n in named]
            return max(subprocess.run(h, cwd=ROOT, check=False).returncode for h in helps)
        print(
            "usage: python -m bench [NAME ...]\n\nRuns every benchmark, or the named ones, prints a "
            "table per benchmark and saves JSON under bench/results/.\n"
            f"benchmarks: {', '.join(known)}\n"
            "Each also runs alone with its own options: python -m bench.NAME --help"
        )
        return 0
    wanted = argv or known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        listed = ", ".join(known)
        print(f"bench: unknown benchmark(s) {', '.join(unknown)} (known: {listed})", file=sys.stderr)
        return 2
    env = dict(os.environ, **{name: "1" for name in THREAD_VARS})
    failed = []
    for name in wanted:
        out = RESULTS / f"{name}.json"
        print(f"bench: running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", "--json", str(out)], cwd=ROOT, env=env, check=False
        )
        spent = time.perf_counter() - started
        if proc.returncode != 0 or not out.exists():
            failed.append(name)
            print(f"bench: {name} failed (exit {proc.returncode})", file=sys.stderr)
            continue
        data = json.loads(out.read_text(encoding="utf-8"))
        print_table(f"{name}  ({spent:.0f} s, {out.relative_to(ROOT)})", table_rows(data))
    if failed:
        print(f"\nbench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

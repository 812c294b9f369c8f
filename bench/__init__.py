"""Benchmarks: `make bench` (= ``python -m bench``) runs every benchmark module and prints a table.

A benchmark module is any ``bench/<name>.py`` (name not starting with ``_``) that defines
``main(argv)`` and accepts ``--json PATH``: it measures, writes its results as JSON to PATH and
returns 0. ``python -m bench`` runs each one in its own process (so thread settings and CPU pinning
apply before any library loads and one benchmark cannot disturb the next), saves the JSON under
``bench/results/<name>.json`` and prints each module's ``"table"`` (rows of ``[what, value,
unit]``) or, when it has none, every numeric value in its JSON. Speed targets live here, never in
timed tests. Helpers for modules: :func:`machine`, :func:`pin_to_one_core`, :func:`write_json`.
"""

from __future__ import annotations

import json
import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def discover() -> list[str]:
    """Names of the benchmark modules, without importing them (imports can be heavy)."""
    names = []
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.stem.startswith("_"):
            continue
        if re.search(r"^def main\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            names.append(path.stem)
    return names


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "uname_m": platform.machine(),
        "cpu_model": cpu_model(),
        "cpus_online": os.cpu_count(),
        "pinned_to_cpus": affinity,
        "python": platform.python_version(),
        "load_average_at_start": load,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def pin_to_one_core() -> int | None:
    """One thread for every math library and this process on one CPU. Call before heavy imports."""
    for name in THREAD_VARS:
        os.environ[name] = "1"
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]  # the last core: core 0 tends to take more interrupts
    os.sched_setaffinity(0, {cpu})
    return cpu


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

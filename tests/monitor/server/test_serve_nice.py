"""`monitor serve --nice N`: the server and every worker process it starts run at that niceness
(what keeps pause latency when other work shares the machine), and a niceness out of range or not
permitted is refused in one line before anything starts. Real `monitor serve` processes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MONITOR = [sys.executable, "-m", "monitor.cli"]


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[16])


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        children = [p for p, pp in parents.items() if pp == parent]
        found += children
        todo += children
    return found


@pytest.mark.slow
def test_the_server_and_its_workers_run_at_the_niceness_asked_for(tmp_path: Path) -> None:
    nice = min(19, os.getpriority(os.PRIO_PROCESS, 0) + 4)  # a higher niceness is always permitted
    db = tmp_path / "monitor.db"
    process = subprocess.Popen(
        [
            *MONITOR,
            "serve",
            "--demo",
            "--port",
            "0",
            "--db",
            str(db),
            "--analysis-workers",
            "1",
            "--nice",
            str(nice),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        while "console" not in json.loads(line := process.stdout.readline() or "{}"):
            assert line, process.stderr.read() if process.stderr else "no output"
        deadline = time.monotonic() + 60
        while not (workers := descendants(process.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers  # the analysis worker (and multiprocessing's helper)
        assert [niceness(pid) for pid in [process.pid, *workers]] == [nice] * (1 + len(workers))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def refused(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_a_niceness_out_of_range_is_refused_before_anything_starts(tmp_path: Path) -> None:
    db = tmp_path / "monitor.db"
    error = refused([*MONITOR, "serve", "--demo", "--port", "0", "--db", str(db), "--nice", "25"])
    assert "--nice 25: must be -20..19" in error and not db.exists()


def test_a_niceness_not_permitted_is_refused_with_what_would_permit_it(tmp_path: Path) -> None:
    db = tmp_path / "monitor.db"
    command = [*MONITOR, "serve", "--demo", "--port", "0", "--db", str(db), "--nice", "-5"]
    if os.geteuid() == 0:  # root may lower its niceness: drop the capability that permits it
        capsh = shutil.which("capsh")
        if capsh is None:
            pytest.skip("capsh (libcap2-bin) is needed to run without CAP_SYS_NICE as root")
        command = [capsh, "--drop=cap_sys_nice", "--", "-c", shlex.join(command)]
    error = refused(command)
    now = os.getpriority(os.PRIO_PROCESS, 0)  # the server's, inherited from this process
    assert f"--nice -5: not permitted (running at {now})" in error and "CAP_SYS_NICE" in error
    assert not db.exists()

"""The benchmarks' CPU hog: real busy-loop processes that use the CPU while they run, at normal
priority, are gone when stopped, and leave by themselves when the process that started them dies (a
killed bench must not leave busy loops behind on a shared machine)."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

from bench.hog import Hog, cpu_seconds


def _state(pid: int) -> str | None:
    """The process's state letter (R, S, Z, ...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_a_hog_uses_the_cpu_and_is_gone_when_stopped() -> None:
    hog = Hog(1)
    hog.start()
    (process,) = hog.processes
    deadline = time.monotonic() + 30
    while cpu_seconds(process.pid) < 0.05 and time.monotonic() < deadline:
        time.sleep(0.05)
    cores = hog.stop()
    assert cores > 0
    # at normal priority whatever this process runs at (lowering a niceness needs root)
    assert hog.niceness == (0 if os.geteuid() == 0 else max(0, os.getpriority(os.PRIO_PROCESS, 0)))
    assert process.returncode is not None and _state(process.pid) is None
    assert hog.stop() == 0.0  # stopping twice is harmless


def test_cpu_seconds_of_a_process_that_is_not_there_is_zero() -> None:
    assert cpu_seconds(os.getpid()) > 0
    assert cpu_seconds(2**22 + 7) == 0.0  # above any pid_max default


def _start_and_die(conn: Any) -> None:
    hog = Hog(1)
    hog.start()
    conn.send(hog.processes[0].pid)
    os._exit(0)  # no clean-up: as if the bench were killed


def test_a_hog_leaves_when_the_process_that_started_it_dies() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    starter = ctx.Process(target=_start_and_die, args=(child,))
    starter.start()
    assert parent.poll(60)
    pid = parent.recv()
    starter.join(30)
    deadline = time.monotonic() + 60
    while _state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pid) in (None, "Z")  # gone, or exited and waiting to be reaped

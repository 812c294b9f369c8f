"""The pause-latency bench's CPU hog: real busy-loop processes that use the CPU while they run, are
gone when stopped, and leave by themselves when the process that started them dies (a killed bench
must not leave busy loops behind on a shared machine); and the bench's conditions are checked."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Any

import pytest

from bench.pause_clients import Hog, cpu_seconds
from bench.pause_latency import main


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
    deadline = time.monotonic() + 30
    while _state(pid) not in (None, "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pid) in (None, "Z")  # gone, or exited and waiting to be reaped


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--conditions", "quiet,storm"], "--conditions: 'quiet,storm' is not a list of distinct quiet, hog"),
        (["--conditions", "hog,hog"], "--conditions: 'hog,hog'"),
        (["--hog", "0"], "--trials and --hog must be at least 1"),
    ],
)
def test_bad_conditions_are_refused_by_name(argv: list[str], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err

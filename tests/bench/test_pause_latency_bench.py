"""The pause-latency bench stops with a clear message when one of its helper processes dies or
reports a failure, instead of waiting for it forever."""

from __future__ import annotations

import multiprocessing as mp
import sys

import pytest

from bench.pause_clients import BenchFailed
from bench.pause_latency import _receive


def _exit(conn: object, code: int) -> None:
    sys.exit(code)


def _fail(conn: object) -> None:
    conn.send(("error", "TimeoutError: trial 3: the call did not resume within 180 s"))  # type: ignore[attr-defined]


async def test_a_dead_helper_process_stops_the_bench_with_its_exit_code() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_exit, args=(child, 3))
    process.start()
    child.close()
    try:
        with pytest.raises(BenchFailed, match=r"the devices process (exited with code 3|closed its pipe)"):
            await _receive(parent, process, "devices", timeout=60)
    finally:
        process.join(10)


async def test_a_helper_that_reports_a_failure_stops_the_bench_with_the_reason() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_fail, args=(child,))
    process.start()
    try:
        with pytest.raises(BenchFailed, match=r"devices process failed: .*did not resume within 180 s"):
            await _receive(parent, process, "devices", timeout=60)
    finally:
        process.join(10)

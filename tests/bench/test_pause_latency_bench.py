"""The pause-latency bench stops with a clear message when one of its helper processes dies or
reports a failure, instead of waiting for it forever, and refuses conditions it does not know."""

from __future__ import annotations

import multiprocessing as mp
import sys
from typing import Any

import pytest

from bench.pause_clients import BenchFailed, receive
from bench.pause_latency import main


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
            await receive(parent, process, "devices", timeout=60)
    finally:
        process.join(10)


async def test_a_helper_that_reports_a_failure_stops_the_bench_with_the_reason() -> None:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_fail, args=(child,))
    process.start()
    try:
        with pytest.raises(BenchFailed, match=r"devices process failed: .*did not resume within 180 s"):
            await receive(parent, process, "devices", timeout=60)
    finally:
        process.join(10)


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

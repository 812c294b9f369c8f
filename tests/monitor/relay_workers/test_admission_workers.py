"""Admission with relay workers: the placement decision (pure) and ``monitor serve --max-calls``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from monitor.call.admission import STALE_SNAPSHOT_S, Limits, OverCapacity, WorkerLoad, choose_worker, unfit

LIMITS = Limits(max_calls=4, max_loop_lag_ms=50.0)


def load(index: int, running: int = 0, lag: float | None = 5.0, **kw: object) -> WorkerLoad:
    fields: dict[str, object] = {"ready": True, "quiet_s": 0.5, "holds_call": False, **kw}
    return WorkerLoad(index=index, running=running, lag_ms=lag, **fields)  # type: ignore[arg-type]


def test_the_fewest_running_calls_wins_among_workers_that_fit() -> None:
    assert choose_worker([load(0, 3), load(1, 1), load(2, 2)], LIMITS) == 1
    # a full worker and a lagging one are passed over even with fewer calls elsewhere taken
    assert choose_worker([load(0, 4), load(1, 1, lag=80.0), load(2, 3)], LIMITS) == 2


def test_a_tie_keeps_the_call_where_it_is_then_takes_the_lowest_index() -> None:
    assert choose_worker([load(0, 1), load(1, 1, holds_call=True)], LIMITS) == 1
    assert choose_worker([load(0, 1), load(1, 1)], LIMITS) == 0
    # holding the call is only a tie-break: a worker with fewer calls still wins
    assert choose_worker([load(0, 2, holds_call=True), load(1, 1)], LIMITS) == 1


def test_a_call_that_has_begun_can_only_start_where_it_is() -> None:
    loads = [load(0, 0), load(1, 2, holds_call=True)]
    assert choose_worker(loads, LIMITS, movable=False) == 1
    full = [load(0, 0), load(1, 4, holds_call=True)]
    with pytest.raises(OverCapacity, match="relay worker 1: 4 calls running, the limit is 4"):
        choose_worker(full, LIMITS, movable=False)


def test_every_worker_full_or_late_refuses_naming_each_reason() -> None:
    loads = [load(0, 4), load(1, 2, lag=120.4), load(2, 1, quiet_s=STALE_SNAPSHOT_S + 2)]
    with pytest.raises(OverCapacity) as refused:
        choose_worker(loads, LIMITS)
    message = refused.value.message
    assert refused.value.code == "over_capacity"
    assert message.startswith("the monitoring server is at capacity (")
    assert "relay worker 0: 4 calls running, the limit is 4" in message
    assert "relay worker 1: running 120 ms late, the limit is 50 ms" in message
    assert "relay worker 2: not reporting for 7 s" in message
    assert message.endswith("please try again in a few minutes")


def test_lag_only_counts_on_a_worker_that_runs_calls() -> None:
    # an idle worker's lag is the machine's: refusing would relieve nothing
    assert unfit(load(0, 0, lag=500.0), LIMITS) is None
    assert unfit(load(0, 1, lag=500.0), LIMITS) == "running 500 ms late, the limit is 50 ms"
    assert unfit(load(0, 1, lag=50.0), LIMITS) is None  # at the limit is still in


def test_no_snapshot_yet_is_fine_until_the_worker_has_been_quiet_too_long() -> None:
    assert unfit(load(0, 1, lag=None, quiet_s=1.0), LIMITS) is None
    assert unfit(load(0, 1, lag=None, quiet_s=STALE_SNAPSHOT_S + 0.1), LIMITS) == "not reporting for 5 s"


def test_no_ready_worker_says_the_server_is_restarting() -> None:
    with pytest.raises(OverCapacity, match="restarting its call processes"):
        choose_worker([load(0, ready=False), load(1, ready=False)], LIMITS)
    with pytest.raises(OverCapacity, match="restarting"):
        choose_worker([], LIMITS)
    # one restarting worker among full ones is named as such
    with pytest.raises(OverCapacity, match="relay worker 0: restarting; relay worker 1: 4 calls"):
        choose_worker([load(0, ready=False), load(1, 4)], LIMITS)


def test_a_limit_of_one_call_per_worker() -> None:
    one = Limits(max_calls=1)
    assert choose_worker([load(0, 1), load(1, 0)], one) == 1
    with pytest.raises(OverCapacity, match="1 call running, the limit is 1"):
        choose_worker([load(0, 1), load(1, 1)], one)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_serve_refuses_a_max_calls_under_one_in_one_line(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "serve",
            "--db",
            str(tmp_path / "m.db"),
            "--demo",
            "--max-calls",
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"--max-calls {value}: must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.db").exists()  # refused before anything was started or written


async def test_what_a_worker_link_tells_admission() -> None:
    """``WorkerLink.load``: running calls (admitted or with a device, not ended), the snapshot's lag
    and how long the worker has been quiet, from the link's own state."""
    import time

    from support.live_server import booking_now

    from monitor.relay_workers.pool import RelayPool
    from monitor.relay_workers.remote_call import RemoteCall
    from policies.config import load_policy

    config = load_policy()
    pool = RelayPool(
        1, hub=None, config=config, record_dir=None, ice_servers=[], analysis_workers=0, ice_hosts=[]
    )
    link = pool.links[0]
    calls = {name: RemoteCall(booking_now(name), config, wall_clock=time.time, hub=None) for name in "abcd"}
    for call in calls.values():
        link.calls[call.call_id] = call
    pool.started.update({"a", "d"})
    calls["d"].ended.set()  # admitted, but over: not running
    calls["b"].devices["v1"] = object()  # type: ignore[assignment]  # a device joined: running
    now = time.monotonic()
    seen = link.load(pool.started, calls["c"], now)
    assert (seen.ready, seen.running, seen.holds_call) == (False, 2, True)  # not spawned: not ready
    link.alive = True
    link.ready.set()
    link.ready_at = now - 2.0
    seen = link.load(pool.started, calls["c"], now)
    assert seen.ready and seen.lag_ms is None and seen.quiet_s == pytest.approx(2.0)  # no snapshot yet
    link.lag_ms, link.snapshot_at = 73.5, now - 0.5
    other = RemoteCall(booking_now("e"), config, wall_clock=time.time, hub=None)
    seen = link.load(pool.started, other, now)
    assert (seen.lag_ms, seen.quiet_s, seen.holds_call) == (73.5, pytest.approx(0.5), False)
    assert unfit(seen, LIMITS) == "running 74 ms late, the limit is 50 ms"

"""Capacity through the real ``monitor serve`` server: the ``serve`` and ``workers`` modes of
``bench.capacity``.

``forward`` and ``naive`` in bench/capacity.py measure a bench-built relay (peers, forwarding,
analysis; no signalling, no policy session, no store). These two modes run the product instead:
``monitor.server.serve.Server`` with a store, every call booked in it, each device joining with its store
link over the signalling WebSocket and sending pre-encoded VP8 of the fixture clip (the visitor is
the booked face, so the call goes live after the security check; the prison side has no reference
photo and is only forwarded) and pre-encoded speech-like Opus at 50 packets a second (a real
device's microphone; the server forwards it to the other side; ``--no-audio``: none). Admission is
set not to limit (no call or lag limit): the step measures what the server carries, not what it
would admit. ``serve`` is the server with every call in its one process (and one
analysis worker); ``workers`` is the front plus ``--relay-workers N`` worker processes, each with
its own analysis worker. The step's process is pinned like the other modes (the relay core), and
every process the server starts inherits that pinning, so "cores" means the same thing.

Measured per step after every call is live: CPU of the server's whole process tree over the
window, frames per second each device received, analysed frames per second per visitor camera,
whether every call stayed live, the event loop lag of the process that carries the calls
(``serve``: this process, p50/p99/max of a 10 ms probe over the window; ``workers``: the largest
of the workers' own p99 over their last 10 s, read from their snapshots -- their max is not in the
snapshots, so ``max`` is None; the front's own p50/p99/max are reported apart as ``front_*``).
The forwarding backlog is inside the workers and is not read here: a growing delay shows as
received frames per second falling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.loadgen import BOOKING, TARGETS, loadgen_process, loopback
from bench.relay import cpu_seconds, loop_lag

LIVE_TIMEOUT_S = 120.0
#: After every call is live, wait this long before measuring: the workers' lag figure is a p99 over
#: their last 10 s (monitor.relay_workers.worker.LAG_WINDOW_S), which must not reach back into call set-up.
SETTLE_S = 11.0
#: A live call whose picture is steady is analysed at the calm pace of monitor/analysis/cadence.py, 2 frames a
#: second (6 while verifying or paused, or when the picture changes): the product's own target here,
#: where the bench-built relay of the other modes analyses at a fixed 6 fps against 5.
SERVE_ANALYSIS_FPS = 1.8


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (relay workers, analysis workers, resource trackers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        children = [p for p, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _cpu(pids: list[int]) -> dict[int, float]:
    result = {}
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            result[pid] = cpu_seconds(pid)
    return result


async def run_serve_step(
    mode: str,
    calls: int,
    seconds: float,
    loadgen_cpus: list[int] | None,
    relay_workers: int,
    audio: bool = True,
) -> dict[str, Any]:
    from monitor.bookings import load_booking
    from monitor.call.admission import Limits
    from monitor.call.seats import JOIN_EARLY_S
    from monitor.server.serve import Server
    from monitor.store.database import Store
    from policies.config import load_policy

    loopback()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    gen = ctx.Process(target=loadgen_process, args=(child, loadgen_cpus, audio), daemon=True)
    gen.start()
    loop = asyncio.get_running_loop()
    folder = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    store = Store(folder / "bench.db")
    workers = relay_workers if mode == "workers" else 0
    # admission must not cap what is measured: no call limit, no lag limit (what passes is decided here)
    unlimited = Limits(max_calls=10_000, max_loop_lag_ms=1e9)
    server = Server(
        [], load_policy(), port=0, analysis_workers=1, store=store, relay_workers=workers, limits=unlimited
    )
    try:
        await loop.run_in_executor(None, parent.recv)
        await server.start()
        base = load_booking(BOOKING, server.config)
        started = time.monotonic()
        refused: list[str] = []
        for n in range(calls):
            starts = datetime.now(UTC) - timedelta(seconds=1)
            booking = dataclasses.replace(
                base, call_id=f"bench-{n}", starts_at=starts, ends_at=starts + (base.ends_at - base.starts_at)
            )
            call: Any = server.add_booking(booking)
            if workers:
                await asyncio.wait_for(call.placed.wait(), 120)
            for seat in call.seats.values():
                opens = booking.starts_at.timestamp() - JOIN_EARLY_S
                token = store.issue_join_token(
                    booking.call_id, seat.participant, seat.role.value, opens, booking.ends_at.timestamp()
                )
                key = f"c{n}/{'visitor' if seat.role.value == 'visitor' else 'prison'}"
                parent.send(("join", key, f"ws://127.0.0.1:{server.port}/ws/call", token))
                _, _, error = await loop.run_in_executor(None, parent.recv)
                if error:
                    refused.append(f"{key}: {error}")
        while (  # noqa: ASYNC110 (polled: the calls' states change in their own tasks, no shared event)
            any(str(c.state) != "live" for c in server.calls) and time.monotonic() - started < LIVE_TIMEOUT_S
        ):
            await asyncio.sleep(0.5)
        all_live = all(str(c.state) == "live" for c in server.calls)
        live_after = round(time.monotonic() - started, 1)
        await asyncio.sleep(SETTLE_S)

        def analysis() -> Any:  # the workers' analysis, as their snapshots said, or the server's pool
            if workers:
                return server.relay.stats().analysis
            assert server.pool is not None
            return server.pool.stats()

        parent.send(("counts",))
        _, counts0 = await loop.run_in_executor(None, parent.recv)
        analysed0 = {k: v.analysed for k, v in analysis().streams.items()}
        generator = {gen.pid, *descendants(gen.pid)} if gen.pid else set()
        tree = [p for p in descendants(os.getpid()) if p not in generator]  # the server's processes only
        stop, lags = asyncio.Event(), []  # type: ignore[var-annotated]
        lag_task = asyncio.ensure_future(loop_lag(stop, lags))
        wall0, cpu0, tree0 = time.monotonic(), time.process_time(), _cpu(tree)
        gen_cpu0 = cpu_seconds(gen.pid) if gen.pid else 0.0
        worker_lags: list[float] = []
        while time.monotonic() - wall0 < seconds:
            await asyncio.sleep(1.0)
            if workers:
                worker_lags.append(max(link.lag_ms for link in server.relay.links))
        wall = time.monotonic() - wall0
        front_cpu = time.process_time() - cpu0
        tree1 = _cpu(tree)
        tree_cpu = sum(tree1[p] - tree0[p] for p in tree1 if p in tree0)
        gen_cpu = (cpu_seconds(gen.pid) if gen.pid else 0.0) - gen_cpu0
        stop.set()
        await lag_task
        parent.send(("counts",))
        _, counts1 = await loop.run_in_executor(None, parent.recv)
        still_live = all(str(c.state) == "live" for c in server.calls)
        stats = analysis().streams
        analysed = {k: (v.analysed - analysed0.get(k, 0)) / wall for k, v in stats.items()}
        received = {k: (counts1.get(k, 0) - counts0.get(k, 0)) / wall for k in counts1 if ":" not in k}
        heard = {k: (counts1.get(k, 0) - counts0.get(k, 0)) / wall for k in counts1 if k.startswith("audio:")}
        ordered = sorted(lags)
        front_lag = {
            "p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 1),
            "max": round(ordered[-1], 1),
        }
        calls_lag_p99 = round(max(worker_lags, default=0.0), 1) if workers else front_lag["p99"]
        min_analysed = min(analysed.values(), default=0.0)
        min_received = min(received.values(), default=0.0)
        passed = (
            all_live
            and not refused
            and len(analysed) == calls
            and len(received) == 2 * calls
            and still_live
            and min_analysed >= SERVE_ANALYSIS_FPS
            and min_received >= TARGETS["received_fps"]
            and calls_lag_p99 <= TARGETS["loop_lag_p99_ms"]
        )
        cores = (front_cpu + tree_cpu) / wall
        return {
            "mode": mode,
            "relay_workers": workers,
            "calls": calls,
            "window_s": round(wall, 1),
            "all_live": all_live,
            "still_live_at_end": still_live,
            "analysis_fps_target": SERVE_ANALYSIS_FPS,
            "live_after_s": live_after,
            "refused": refused,
            "relay_cpu_cores": round(front_cpu / wall, 3),  # the front (serve: everything but analysis)
            "analysis_worker_cpu_cores": round(tree_cpu / wall, 3),  # every process under it
            "relay_total_cores": round(cores, 3),
            "loadgen_cpu_cores": round(gen_cpu / wall, 3),
            "analysed_fps_min": round(min_analysed, 1),
            "received_fps_min": round(min_received, 1),
            "received_fps_mean": round(statistics.mean(received.values()), 1) if received else 0.0,
            "devices_send_audio": audio,
            "audio_received_pps_min": round(min(heard.values(), default=0.0), 1),
            "loop_lag_ms": (
                {"p99": calls_lag_p99, "max": None, **{f"front_{k}": v for k, v in front_lag.items()}}
                if workers
                else {**front_lag, "front_p99": front_lag["p99"]}
            ),
            "worker_lag_p99_ms_samples": [round(x, 1) for x in worker_lags],
            "processes": 1 + len(tree),
            "passed": passed,
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        with contextlib.suppress(Exception):
            parent.send(("stop",))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.stop(), 60)
        store.close()
        gen.join(20)
        if gen.is_alive():
            gen.kill()

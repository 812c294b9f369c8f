"""Soak: calls through the forwarding relay for a long time; memory growth and drift.

``python -m bench.soak [--calls 2] [--seconds 600] [--mode forward|naive]``

The same relay and load generator as ``bench.capacity`` (pre-encoded 640x480 30 fps VP8 from the
fixture clip, two devices per call, the visitor analysed in a worker process). Every
``--every`` seconds it samples the relay process's and the analysis worker's RSS, the event loop
lag over the interval, frames received per second by the devices and the forwarding backlog.
Memory growth compares the last sample with the first sample after ``--warm`` seconds; drift
compares the first and the last third of the run (loop lag p99, received fps, backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import ROOT, machine, write_json
from bench.capacity import Relay, backlog, loadgen_process, loopback
from bench.relay import loop_lag


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def soak(mode: str, calls: int, seconds: float, every: float, warm: float) -> dict[str, Any]:
    loopback()
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    gen = ctx.Process(target=loadgen_process, args=(child,), daemon=True)
    gen.start()
    loop = asyncio.get_running_loop()
    relay = Relay(mode, parent)
    samples: list[dict[str, Any]] = []
    try:
        await loop.run_in_executor(None, parent.recv)
        await relay.start()
        for n in range(calls):
            await relay.add_call(n)
        started = time.monotonic()
        parent.send(("counts",))
        _, before = await loop.run_in_executor(None, parent.recv)
        while time.monotonic() - started < seconds:
            stop, lags = asyncio.Event(), []  # type: ignore[var-annotated]
            task = asyncio.ensure_future(loop_lag(stop, lags))
            t0 = time.monotonic()
            await asyncio.sleep(every)
            stop.set()
            await task
            parent.send(("counts",))
            _, after = await loop.run_in_executor(None, parent.recv)
            wall = time.monotonic() - t0
            fps = [(after.get(k, 0) - before.get(k, 0)) / wall for k in after]
            before = after
            ordered = sorted(lags)
            pids = relay.worker_pids()
            samples.append({
                "t_s": round(time.monotonic() - started, 1),
                "relay_rss_mb": round(rss_mb(os.getpid()), 1),
                "worker_rss_mb": round(sum(rss_mb(p) for p in pids), 1),
                "loop_lag_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1) if ordered else None,
                "received_fps_min": round(min(fps), 1) if fps else 0.0,
                "forward_backlog": backlog(relay),
            })
            print(samples[-1], flush=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.stop(), 30)
        parent.send(("stop",))
        gen.join(20)
        if gen.is_alive():
            gen.kill()
    after_warm = [s for s in samples if s["t_s"] >= warm] or samples
    third = max(1, len(samples) // 3)
    first, last = samples[:third], samples[-third:]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return round(statistics.mean(values), 2) if values else 0.0

    base = after_warm[0]["relay_rss_mb"] + after_warm[0]["worker_rss_mb"]
    end = after_warm[-1]["relay_rss_mb"] + after_warm[-1]["worker_rss_mb"]
    return {
        "mode": mode,
        "calls": calls,
        "seconds": seconds,
        "memory_mb_after_warm_up": round(base, 1),
        "memory_mb_at_end": round(end, 1),
        "memory_growth_pct": round(100 * (end - base) / base, 2) if base else None,
        "target_memory_growth_pct": 5,
        "loop_lag_p99_ms_first_third": mean(first, "loop_lag_p99_ms"),
        "loop_lag_p99_ms_last_third": mean(last, "loop_lag_p99_ms"),
        "received_fps_min_first_third": mean(first, "received_fps_min"),
        "received_fps_min_last_third": mean(last, "received_fps_min"),
        "forward_backlog_last": samples[-1]["forward_backlog"] if samples else None,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--every", type=float, default=10.0, help="sampling interval")
    parser.add_argument("--warm", type=float, default=60.0, help="warm-up before the memory baseline")
    parser.add_argument("--mode", choices=("forward", "naive"), default="forward")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    warm = min(args.warm, args.seconds / 3)
    result = asyncio.run(soak(args.mode, args.calls, args.seconds, args.every, warm))
    report: dict[str, Any] = {"machine": machine(), "soak": result}
    report["table"] = [[key, result[key], ""] for key in result if key != "samples"]
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(Path(args.json), report)
    keys = [k for k in result if k != "samples"]
    for key in keys:
        print(f"{key:36} {result[key]}")
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

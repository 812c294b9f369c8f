"""Soak: calls through the forwarding relay for a long time; memory growth and drift.

``python -m bench soak`` (10 minutes) or ``python -m bench.soak [--calls 2] [--seconds 600]
[--mode forward|naive]``

The same relay and load generator as ``bench.capacity`` (pre-encoded 640x480 30 fps VP8 from the
fixture clip, two devices per call, the visitor analysed in a worker process). Every
``--every`` seconds it samples the relay process's and the analysis worker's RSS, the event loop
lag over the interval, the analysis latency (frame arrival at the relay to its observation back
from the worker: p50 and p95), frames received per second by the devices and the forwarding
backlog. Memory growth compares the last sample with the first sample after ``--warm`` seconds;
drift compares the first minute after warm-up with the last minute of the run (loop lag p99,
analysis latency, received fps, backlog).
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
from bench.capacity import Relay, backlog
from bench.loadgen import loadgen_process, loopback
from bench.relay import loop_lag

MINUTE_S = 60.0


class SoakRelay(Relay):
    """The capacity bench's relay, also timing each analysis: frame arrival to its observation."""

    def __init__(self, mode: str, conn: Any) -> None:
        super().__init__(mode, conn)
        self.latencies_ms: list[float] = []

    def _result(self, key: str, observation: Any, spent: float) -> None:
        self.latencies_ms.append(1000 * (time.monotonic() - observation.t))
        super()._result(key, observation, spent)

    def take_latencies(self) -> list[float]:
        taken, self.latencies_ms = self.latencies_ms, []
        return sorted(taken)


def percentile(ordered: list[float], q: float) -> float | None:
    return round(ordered[int(q * (len(ordered) - 1))], 1) if ordered else None


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
    relay = SoakRelay(mode, parent)
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
            latencies = relay.take_latencies()
            pids = relay.worker_pids()
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "relay_rss_mb": round(rss_mb(os.getpid()), 1),
                    "worker_rss_mb": round(sum(rss_mb(p) for p in pids), 1),
                    "loop_lag_p99_ms": percentile(ordered, 0.99),
                    "analysis_latency_p50_ms": percentile(latencies, 0.5),
                    "analysis_latency_p95_ms": percentile(latencies, 0.95),
                    "analysed": len(latencies),
                    "received_fps_min": round(min(fps), 1) if fps else 0.0,
                    "forward_backlog": backlog(relay),
                }
            )
            print(samples[-1], flush=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(relay.stop(), 30)
        parent.send(("stop",))
        gen.join(20)
        if gen.is_alive():
            gen.kill()
    return summarise(mode, calls, seconds, warm, samples)


def summarise(
    mode: str, calls: int, seconds: float, warm: float, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """Memory growth after warm-up; drift: the first minute after warm-up against the last minute."""
    after_warm = [s for s in samples if s["t_s"] >= warm] or samples
    end_t = samples[-1]["t_s"] if samples else 0.0
    first = [s for s in after_warm if s["t_s"] <= after_warm[0]["t_s"] + MINUTE_S - 1e-6] if samples else []
    last = [s for s in after_warm if s["t_s"] > end_t - MINUTE_S]

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.mean(values), 2) if values else None

    base = after_warm[0]["relay_rss_mb"] + after_warm[0]["worker_rss_mb"] if samples else 0.0
    end = after_warm[-1]["relay_rss_mb"] + after_warm[-1]["worker_rss_mb"] if samples else 0.0
    result: dict[str, Any] = {
        "mode": mode,
        "calls": calls,
        "seconds": seconds,
        "warm_up_s": warm,
        "memory_mb_after_warm_up": round(base, 1),
        "memory_mb_at_end": round(end, 1),
        "memory_growth_pct": round(100 * (end - base) / base, 2) if base else None,
        "target_memory_growth_pct": 5,
        "drift_first_minute_from_s": first[0]["t_s"] if first else None,
        "drift_last_minute_from_s": last[0]["t_s"] if last else None,
    }
    for key in ("loop_lag_p99_ms", "analysis_latency_p50_ms", "analysis_latency_p95_ms", "received_fps_min"):
        a, b = mean(first, key), mean(last, key)
        result[f"{key}_first_minute"] = a
        result[f"{key}_last_minute"] = b
        if key != "received_fps_min":
            result[f"{key}_drift"] = round(b - a, 2) if a is not None and b is not None else None
    result["forward_backlog_max"] = max((s["forward_backlog"] for s in samples), default=None)
    result["forward_backlog_last"] = samples[-1]["forward_backlog"] if samples else None
    result["samples"] = samples
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--every", type=float, default=10.0, help="sampling interval")
    parser.add_argument("--warm", type=float, default=60.0, help="warm-up before the memory baseline")
    parser.add_argument("--mode", choices=("forward", "naive"), default="forward")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "soak.json"))
    args = parser.parse_args(argv)
    if args.calls < 1 or args.every <= 0 or args.seconds < args.every:
        parser.error("--calls must be at least 1 and --seconds at least --every (> 0)")
    warm = min(args.warm, args.seconds / 3)
    measured_on = machine()  # the load average before the run, not after it
    result = asyncio.run(soak(args.mode, args.calls, args.seconds, args.every, warm))
    report: dict[str, Any] = {"machine": measured_on, "soak": result}
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

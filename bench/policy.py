"""Cost of the pure policy core: `Session.handle` per event over whole scripted calls, on one core.

``python -m bench.policy [--json bench/results/policy.json]``

Two 30-minute calls are scripted as event streams (no media, no models: this measures the core
alone): a typical one (2 visitor devices + the prison terminal analysed at the replay's 6 fps,
4 ticks a second) and a heavy one (4 visitor devices + the terminal at 30 fps). Both include an
unbooked walk-in, a partly visible face, a capture attempt with staff approval and a device that
drops and comes back, so pauses, rechecks and warnings all happen. Reported: per-event cost
(median, p99, max) and events per second of CPU; the policy's share of a core per live call is
events/s of the call divided by that rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import RESULTS, machine, pin_to_one_core, write_json


def script(visitor_devices: int, fps: float, duration: float = 1800.0) -> list[Any]:
    from policies.events import (
        CaptureAttempt,
        Face,
        Observation,
        ParticipantJoined,
        ParticipantLeft,
        Role,
        StaffResume,
        Tick,
        Verdict,
        Visibility,
    )

    visitors = [f"v{n + 1}" for n in range(visitor_devices)]
    events: list[Any] = [ParticipantJoined(-30.0, v, Role.VISITOR, v) for v in visitors]
    events.append(ParticipantJoined(-30.0, "P1", Role.PRISONER, "P1"))
    step = 1.0 / fps
    n = 0
    t = -20.0
    while t < duration + 1.0:
        for source in [*visitors, "P1"]:
            faces = [Face(1, Verdict.MATCH, source, 0.35)]
            if source == "v1" and 300.0 <= t < 304.0:  # someone unbooked walks in
                faces.append(Face(2, Verdict.UNBOOKED, None, 0.71))
            if source == "v2" and 600.0 <= t < 607.0:  # partly out of the picture
                faces = [Face(1, Verdict.MATCH, source, 0.4, Visibility.PARTIAL)]
            if source == "v2" and 900.0 <= t < 912.0:  # dropped and reconnecting
                continue
            events.append(
                Observation(
                    round(t, 4), source, Role.PRISONER if source == "P1" else Role.VISITOR, tuple(faces)
                )
            )
        if n % max(1, round(fps / 4)) == 0:
            events.append(Tick(round(t, 4)))
        if abs(t - 1200.0) < step / 2:
            events.append(CaptureAttempt(round(t, 4), "v1", "screen recorder"))
        if abs(t - 1210.0) < step / 2:
            events.append(StaffResume(round(t, 4), "officer"))
        if abs(t - 900.0) < step / 2:
            events.append(ParticipantLeft(round(t, 4), "v2"))
        if abs(t - 912.0) < step / 2:
            events.append(ParticipantJoined(round(t, 4), "v2", Role.VISITOR, "v2"))
        n += 1
        t = -20.0 + n * step
    return events


def run(name: str, visitor_devices: int, fps: float) -> dict[str, Any]:
    from policies.config import load_policy
    from policies.session import Session

    config = load_policy()
    events = script(visitor_devices, fps)
    session = Session(config, 1800.0, tuple(f"v{n + 1}" for n in range(visitor_devices)), "P1")
    costs: list[int] = []
    decisions = 0
    cpu0 = time.process_time()
    for event in events:
        start = time.perf_counter_ns()
        decisions += len(session.handle(event))
        costs.append(time.perf_counter_ns() - start)
    cpu = time.process_time() - cpu0
    costs.sort()
    per_s = len(events) / 1820.0
    rate = len(events) / cpu
    return {
        "call": name,
        "events": len(events),
        "decisions": decisions,
        "final_state": session.state.value,
        "events_per_media_s": round(per_s, 1),
        "cpu_s": round(cpu, 3),
        "events_per_cpu_s": round(rate),
        "median_us": round(statistics.median(costs) / 1000, 1),
        "p99_us": round(costs[int(len(costs) * 0.99)] / 1000, 1),
        "max_us": round(costs[-1] / 1000, 1),
        "core_share_per_call_pct": round(100 * per_s / rate, 3),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.policy")
    parser.add_argument("--json", type=Path, default=RESULTS / "policy.json")
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    results = [
        run("typical: 2 visitors + terminal at 6 fps", 2, 6.0),
        run("heavy: 4 visitors + terminal at 30 fps", 4, 30.0),
    ]
    table = []
    for r in results:
        for key, unit in (
            ("events", ""),
            ("median_us", "us/event"),
            ("p99_us", "us/event"),
            ("max_us", "us/event"),
            ("events_per_cpu_s", "events/s"),
            ("core_share_per_call_pct", "% of a core"),
        ):
            table.append([f"{r['call']}: {key}", r[key], unit])
    write_json(args.json, {"machine": {**machine(), "pinned_cpu": cpu}, "calls": results, "table": table})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

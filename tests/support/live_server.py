"""The real ``monitor serve`` server on its own event loop in a background thread.

For tests whose client side is synchronous (hypothesis drives plain functions): the server, its
calls, and any in-process aiortc devices run on the server thread's loop (``run(coro)`` executes a
coroutine there); the test talks to it over real sockets on 127.0.0.1 with an ephemeral port.
``errors`` collects every ERROR log record that carries a traceback, from any logger, so a test
can assert that bad input was handled as a user error and not as a crash.

For async tests, ``serving`` runs the same server on the test's own loop; ``join_device`` and
``join_seat`` connect real aiortc devices to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import socket
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
from aiortc.contrib.media import MediaBlackhole

from monitor.admin import import_booking
from monitor.bookings import load_booking
from monitor.call.call import Call
from monitor.call.handle import CallHandle
from monitor.call.seats import JOIN_EARLY_S
from monitor.media.jitter import watch_losses
from monitor.server.serve import Server
from policies.booking import Booking
from policies.config import load_policy
from policies.decisions import State
from signalling.client import ClipTrack, Device, ToneTrack, Watch, load_clip
from support.ice import loopback_ice

ROOT = Path(__file__).resolve().parents[2]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
CLEAN_CLIP = ROOT / "fixtures" / "clips" / "clean.webm"

WALK_IN_CLIP = ROOT / "fixtures" / "clips" / "unbooked_walk_in.webm"


def ping_pong(frames: list[Any]) -> list[Any]:
    """A clip that loops without a jump (the same arrays, no extra memory)."""
    return frames + frames[-2:0:-1]


def call_clips() -> dict[str, list[Any]]:
    """The cameras the call tests send: the booked man alone ("clean"), and him with the unbooked
    woman in view ("intruder", walk-in frames 170-229: both people in view), each ping-ponged."""
    walk_in = load_clip(WALK_IN_CLIP, max_frames=240)[170:230]
    return {"clean": ping_pong(load_clip(CLEAN_CLIP, max_frames=60)), "intruder": ping_pong(walk_in)}


FOUR_VISITORS = ROOT / "fixtures" / "bookings" / "four_visitors" / "booking.json"
GROUP_CLIP = ROOT / "fixtures" / "clips" / "group.webm"
BACK_OF_HEAD_CLIP = ROOT / "fixtures" / "clips" / "back_of_head.webm"
LEAVES_CAMERA_CLIP = ROOT / "fixtures" / "clips" / "leaves_camera.webm"


def cut(frames: list[Any], box: tuple[int, int, int, int], scale: float = 2.0) -> list[Any]:
    """The ``box`` (x0, y0, x1, y1) of every frame, scaled by ``scale``: one person's own camera cut
    out of a fixture clip that shows several (real footage, cropped and scaled, nothing drawn)."""
    x0, y0, x1, y1 = box
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    return [
        cv2.resize(np.ascontiguousarray(f[y0:y1, x0:x1]), size, interpolation=cv2.INTER_CUBIC) for f in frames
    ]


def visitor_cameras() -> dict[str, list[Any]]:
    """One camera per visitor of fixtures/bookings/four_visitors, each showing only that person
    (their reference photos: the man's single_face.jpg, Grace Hopper's portrait, the group booking's
    two face crops), plus ``unbooked``, someone booked on no call, and ``prison``, the prison
    terminal's camera (another real man, pose2sim's cam04: the prison side has no reference photo
    and is not analysed), and ``nobody``, an empty view (leaves_camera.webm's sky, 8-9 s). Each is
    ping-ponged.

    - ``v1``: the booked man (clean.webm), 640x480.
    - ``v2``: Grace Hopper alone, the right half of unbooked_walk_in.webm while she is in full view
      (frames 170-229), 640x480. On the clean booking she is the unbooked person.
    - ``v3``, ``v4``, ``unbooked``: Emma and Lucy Hart (the group booking's v1, v2) and the man in
      sunglasses above Emma, each cut from group.webm frames 37-67 (the slow end of the view's sway:
      faces move at most 6 px, so a fixed box holds one face and no part of another), scaled x2
      (208x278, 212x282, 272x336: phone-sized portrait cameras). Measured with the pipeline: v3, v4
      MATCH at 0.15, 0.14; the man in sunglasses is at 0.71 from everyone booked (UNBOOKED).
    """
    walk_in = load_clip(WALK_IN_CLIP, max_frames=230)[170:230]
    group = load_clip(GROUP_CLIP, max_frames=68)[37:68]
    return {
        "v1": ping_pong(load_clip(CLEAN_CLIP, max_frames=60)),
        "v2": ping_pong(cut(walk_in, (310, 130, 630, 370))),
        "v3": ping_pong(cut(group, (122, 132, 226, 271))),
        "v4": ping_pong(cut(group, (292, 214, 398, 355))),
        "unbooked": ping_pong(cut(group, (36, 0, 172, 168))),
        "prison": ping_pong(load_clip(BACK_OF_HEAD_CLIP, max_frames=210)[150:210]),
        "nobody": ping_pong(load_clip(LEAVES_CAMERA_CLIP, max_frames=270)[240:270]),
    }


@contextlib.asynccontextmanager
async def serving(
    bookings: Sequence[Booking] = (), analysis_workers: int = 1, **options: Any
) -> AsyncIterator[Server]:
    """A real ``monitor serve`` server on the running loop (an ephemeral loopback port, loopback
    ICE candidates), serving ``bookings`` (tests may add more: ``booking_now``,
    ``Server.add_booking``). ``options`` go to ``Server``. Stopped on exit."""
    with loopback_ice():
        server = Server(list(bookings), load_policy(), port=0, analysis_workers=analysis_workers, **options)
        await server.start()
        try:
            yield server
        finally:
            await server.stop()


T = TypeVar("T")
STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) [^\r\n]*\r\n")


def websockets_eof_assertion(record: logging.LogRecord) -> bool:
    """websockets 17.4's own bug: bytes that follow a complete HTTP request in the same packet and
    do not parse as a request make its parser send EOF; sending the first request's response then
    trips ``assert not self.eof_sent`` in ``Protocol.send_eof``, logged as "unexpected internal
    error". The connection is closed, the server is unharmed; no code of ours is on the stack."""
    if record.getMessage() != "unexpected internal error" or not record.exc_info:
        return False
    error = record.exc_info[1]
    if not isinstance(error, AssertionError):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].name == "send_eof" and "websockets" in frames[-1].filename


class TracebackLog(logging.Handler):
    """Keeps ERROR (and worse) records that have exception info or a traceback in their text.
    ``known`` records (a library's bug, documented where it is tolerated) are counted apart."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.known: list[logging.LogRecord] = []
        self.tolerate: list[Callable[[logging.LogRecord], bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage():
            if any(check(record) for check in self.tolerate):
                self.known.append(record)
            else:
                self.records.append(record)

    def describe(self) -> str:
        return "\n".join(f"{r.name}: {r.getMessage()}\n{self.format(r)}" for r in self.records)

    def assert_clean(self) -> None:
        assert not self.records, f"tracebacks logged for bad input:\n{self.describe()}"


def booking_now(
    call_id: str, starts_in: float = -1.0, path: Path = BOOKING, ends_in: float | None = None
) -> Booking:
    """The booking at ``path`` (default: the clean one) as call ``call_id``, starting ``starts_in``
    seconds from now, same length; or, given ``ends_in``, already running and ending that many
    seconds from now."""
    base = load_booking(path, load_policy())
    length = base.ends_at - base.starts_at
    starts = datetime.now(UTC) + timedelta(seconds=starts_in)
    if ends_in is not None:
        starts = datetime.now(UTC) + timedelta(seconds=ends_in) - length
    return dataclasses.replace(base, call_id=call_id, starts_at=starts, ends_at=starts + length)


def add_call(server: Server, booking: Booking) -> Call:
    """``server.add_booking(booking)``, as the in-process :class:`Call` it is without relay workers
    (the tests look inside it: its decisions, its config)."""
    call = server.add_booking(booking)
    assert isinstance(call, Call), "an in-process server (no relay workers) makes Call objects"
    return call


def book_now(server: Server, call_id: str) -> Call:
    """``booking_now(call_id)`` served by ``server``, and in its store when it has one (the
    console's board and the audit log list stored calls)."""
    booking = booking_now(call_id)
    if server.store is not None:
        import_booking(server.store, booking)
    return add_call(server, booking)


class LiveServer:
    def __init__(self, bookings: list[Booking], *, store: Any = None, analysis_workers: int = 0) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)
        self.server = Server(bookings, load_policy(), port=0, analysis_workers=analysis_workers, store=store)
        self.errors = TracebackLog()
        self._patched = contextlib.ExitStack()  # loopback ICE from start() to stop()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/call"

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    def start(self) -> LiveServer:
        self._patched.enter_context(loopback_ice())
        logging.getLogger().addHandler(self.errors)
        self.thread.start()
        self.run(self.server.start(), timeout=180)
        return self

    def stop(self) -> None:
        try:
            self.run(self.server.stop(), timeout=60)
            self.run(self._cancel_rest(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()
            logging.getLogger().removeHandler(self.errors)
            self._patched.close()

    @staticmethod
    async def _cancel_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, timeout=5)

    def call(self, call_id: str) -> Call:
        call = self.server.calls.get(call_id)
        assert isinstance(call, Call), call_id
        return call

    def token(self, call_id: str, role: str) -> str:
        return join_token(self.server, self.call(call_id), role)

    @staticmethod
    def rss_mb() -> float:
        """Resident memory of the process the server runs in (this one: a test's clients are small
        beside it, and FlowingCall reads all it receives)."""
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0]) / 1024


def join_token(server: Server, call: CallHandle[Any], role: str) -> str:
    """A join token for the first seat of ``role``: with a store, a store token (what `monitor book`
    prints; the only kind such a server accepts), else the call's own in-memory token."""
    own, seat = next((t, s) for t, s in call.seats.items() if s.role.value == role)
    if server.store is None:
        return own
    opens = call.booking.starts_at.timestamp() - JOIN_EARLY_S
    closes = call.booking.ends_at.timestamp()
    token: str = server.store.issue_join_token(
        call.call_id, seat.participant, role, opens, closes, revoke_earlier=False
    )
    return token


@dataclasses.dataclass
class FlowingCall:
    """A call with both devices connected through the relay; ``watch`` counts the video frames the
    prisoner receives from the visitor (live media once the call is live, else the slate). Every
    other received track is read and dropped (``sink``): an unread aiortc track queues its decoded
    frames without end (about 14 MB/s of 640x480 video), which would be this harness's memory
    growing, not the server's. Like a browser, each device asks for a keyframe when it has lost
    part of one (``recover_like_a_browser``): on a loaded machine a call that runs through a whole
    module loses packets, and plain aiortc then shows nothing until the sender's next keyframe."""

    live: LiveServer
    call: Call
    devices: list[Device]
    watch: Watch
    sink: MediaBlackhole

    @classmethod
    def open(cls, live: LiveServer, call_id: str) -> FlowingCall:
        async def connect() -> FlowingCall:
            frames = ping_pong(load_clip(CLEAN_CLIP, max_frames=60))
            call = live.call(call_id)
            devices = []
            for role in ("prisoner", "visitor"):
                device, _ = await join_device(live.server, call, role, frames)
                recover_like_a_browser(device)
                devices.append(device)
            watch = Watch(devices[0].received[0])
            sink = MediaBlackhole()
            for device in devices:
                for track in device.received:
                    if track is not watch.track:
                        sink.addTrack(track)
            await sink.start()
            return cls(live, call, devices, watch, sink)

        return live.run(connect())

    @classmethod
    @contextlib.contextmanager
    def live_throughout(cls, live: LiveServer, call_id: str) -> Iterator[FlowingCall]:
        """The call opened and live (an assertion fails if the booked face never goes live),
        closed at the end: what a fuzz module's calls flow through."""
        call = cls.open(live, call_id)
        try:
            assert call.wait_live(120), f"the booked face never went live: {call.call.state}"
            yield call
        finally:
            call.close()

    def baseline(self) -> dict[str, float]:
        """The prisoner's received frame rate and the server's memory now (to compare with later)."""
        return {"rate": self.rate(3.0), "rss_mb": self.live.rss_mb()}

    @property
    def count(self) -> int:
        return self.watch.count

    def wait_live(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call.state is State.LIVE:
                return True
            time.sleep(0.2)
        return False

    def rate(self, seconds: float) -> float:
        """Frames per second the prisoner receives, measured over ``seconds`` from now."""
        before, started = self.count, time.monotonic()
        time.sleep(seconds)
        return (self.count - before) / (time.monotonic() - started)

    def close(self) -> None:
        async def close() -> None:
            self.watch.stop()
            await self.sink.stop()
            for device in self.devices:
                await device.close()

        self.live.run(close())


# ---- raw HTTP on the port --------------------------------------------------------------------


def exchange(port: int, data: bytes, timeout: float = 15.0) -> bytes:
    """Write ``data`` on a fresh connection; everything the server sends until it closes (or, after
    a 101 upgrade, until it goes quiet)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)  # the server may give up part-way and still have answered
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                if b"".join(chunks).startswith(b"HTTP/1.1 101 "):
                    break
                raise
            if not chunk:
                break
            chunks.append(chunk)
            if b"".join(chunks).startswith(b"HTTP/1.1 101 ") and b"\r\n\r\n" in b"".join(chunks):
                break  # upgraded: the server now waits for WebSocket frames
    return b"".join(chunks)


def status_of(reply: bytes) -> int | None:
    """The HTTP status the server answered with, or None when it just closed the connection."""
    if not reply:
        return None
    match = STATUS.match(reply)
    assert match, f"not an HTTP response: {reply[:200]!r}"
    status = int(match.group(1))
    assert status < 500, f"server error for fuzzed input: {reply[:300]!r}"
    assert b"Traceback" not in reply
    return status


def seat_token(server: Server, call: CallHandle[Any], participant: str) -> str:
    """A join token for ``participant``'s seat (a store token when the server has a store)."""
    own, seat = next((t, s) for t, s in call.seats.items() if s.participant == participant)
    if server.store is None:
        return own
    opens = call.booking.starts_at.timestamp() - JOIN_EARLY_S
    closes = call.booking.ends_at.timestamp()
    token: str = server.store.issue_join_token(
        call.call_id, participant, seat.role.value, opens, closes, revoke_earlier=False
    )
    return token


async def join_seat(
    server: Server, call: CallHandle[Any], participant: str, frames: list[Any], fps: float = 30.0
) -> tuple[Device, ClipTrack]:
    """A device that joins ``participant``'s seat and sends ``frames`` as its camera (at ``fps``),
    a tone as its mic."""
    dev = Device(f"ws://127.0.0.1:{server.port}/ws/call")
    await dev.open()
    joined = await dev.join(seat_token(server, call, participant))
    assert joined["type"] == "joined" and joined["participant"] == participant, joined
    camera = ClipTrack(frames, fps)
    await dev.call(camera, ToneTrack())
    recover_like_a_browser(dev)
    return dev, camera


def recover_like_a_browser(dev: Device) -> None:
    """A browser that loses part of a keyframe asks for a new one; plain aiortc never does, and
    shows corrupt pictures until the sender's next keyframe (which may never come: the relay
    forwards, it has no encoder). With five devices and the server on one loaded event loop, UDP
    buffers overflow exactly when keyframes burst, so the test devices get the relay's own loss
    recovery on their video receivers (``monitor.media.jitter``: give the hole up, PLI, wait for a key)."""
    assert dev.pc is not None
    for receiver in dev.pc.getReceivers():
        if receiver.track is not None and receiver.track.kind == "video":
            watch_losses(receiver)


async def join_device(
    server: Server, call: CallHandle[Any], role: str, frames: list[Any]
) -> tuple[Device, ClipTrack]:
    """A device that joins ``call`` as ``role`` (with a store link when the server has a store) and
    sends ``frames`` as its camera and a tone as its microphone."""
    dev = Device(f"ws://127.0.0.1:{server.port}/ws/call")
    await dev.open()
    joined = await dev.join(join_token(server, call, role))
    assert joined["type"] == "joined", joined
    camera = ClipTrack(frames)
    await dev.call(camera, ToneTrack())
    return dev, camera


async def wait_state(dev: Device, state: str, timeout: float = 30.0) -> dict[str, Any]:
    """The device's next ``state`` frame with that state (``ended`` also matches the ended frame)."""
    deadline = time.monotonic() + timeout
    while True:
        frame = await dev.expect_any(("state", "ended"), timeout=max(0.1, deadline - time.monotonic()))
        if frame["type"] == "closed":
            raise AssertionError(f"closed while waiting for {state}")
        if frame.get("state") == state or (state == "ended" and frame["type"] == "ended"):
            return frame

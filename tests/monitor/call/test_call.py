"""Live calls end to end in process: real aiortc devices, the real server (signalling, relay,
analysis worker process with the real models, policy session) and real fixture clips.

One server (and its analysis worker) serves every test of this module; each test books its own
call, starting now.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
import pytest_asyncio
from support.live_server import (
    add_call,
    booking_now,
    call_clips,
    join_device,
    join_token,
    serving,
    wait_state,
)
from support.pictures import is_clip

from monitor.call.call import Call
from monitor.media.tracks import PAUSED_BGR
from monitor.server.serve import Server
from monitor.store.audit import AuditLog
from monitor.store.database import Store
from policies.decisions import Alert, State
from policies.reasons import Reason
from signalling.client import Device, Watch, shows_slate

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"


@pytest.fixture(scope="module")
def clips() -> dict[str, list[np.ndarray]]:
    return call_clips()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    folder = tmp_path_factory.mktemp("serve")
    store = Store(folder / "monitor.db")
    async with serving(record_dir=folder / "record", store=store) as srv:
        yield srv
    store.close()


def book(server: Server, name: str, ends_in: float | None = None) -> Call:
    """The clean booking as call ``name``, starting now (or, given ``ends_in``, already running and
    ending soon)."""
    return add_call(server, booking_now(name, ends_in=ends_in))


def token_of(server: Server, call: Call, role: str) -> str:
    return join_token(server, call, role)  # a store token: the server has a store


async def test_booked_face_goes_live_intruder_pauses_with_slate_and_recheck_resumes(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    call = book(server, "call-intruder")
    prison, _ = await join_device(server, call, "prisoner", clips["clean"])
    visitor, camera = await join_device(server, call, "visitor", clips["clean"])
    received = Watch(prison.received[0])  # the prisoner's view of visitor v1
    try:
        # before the check passes, the prisoner sees the paused slate, never the visitor
        await received.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=15)
        await wait_state(visitor, "live", timeout=120)
        assert call.state is State.LIVE
        await received.until(is_clip(clips["clean"], within=14, samples=30), timeout=10)
        await asyncio.sleep(3.0)  # a while live before anything happens

        camera.play(clips["intruder"])  # an unbooked person walks in
        paused = await wait_state(prison, "paused", timeout=90)
        # one person is booked on this device, so two faces also count as too many faces
        assert set(paused["reasons"]) <= {"unbooked_face", "too_many_faces"}, paused
        assert paused["explanation"] and paused["needs"]
        await received.until(lambda image: shows_slate(image, PAUSED_BGR), timeout=2)
        # identity voting confirms the newcomer is not booked: staff get the unbooked_face alert
        for _ in range(900):
            if any(isinstance(d, Alert) and d.reason is Reason.UNBOOKED_FACE for d in call.decisions):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no unbooked_face alert: {call.decisions}")
        assert call.state is State.PAUSED

        camera.play(clips["clean"])  # the intruder leaves: the recheck passes, the call resumes
        await wait_state(visitor, "live", timeout=120)
        await received.until(is_clip(clips["clean"], within=14, samples=30), timeout=10)
        # the archive goes on past the resume: replay needs a full clean recheck window of archived
        # frames after it, and on a loaded machine the archived frames can come sparse
        await asyncio.sleep(6.0)
    finally:
        received.stop()
        await visitor.close()
        await prison.close()
        await call.close()
    assert server.record_dir is not None
    lines = [json.loads(line) for line in (server.record_dir / call.call_id / "timeline.jsonl").open()]
    states = [(r["state"], r.get("reasons", [])) for r in lines if r["kind"] == "state"]
    pauses = [i for i, s in enumerate(states) if s[0] == "paused"]
    assert pauses and pauses[0] < max(i for i, s in enumerate(states) if s[0] == "live")
    assert any(r["kind"] == "alert" and r["reason"] == "unbooked_face" for r in lines)
    assert server.store is not None
    for _ in range(50):  # the console's recorder audits what the call publishes
        audit = AuditLog(server.store).for_call(call.call_id)
        decided = [r for r in audit if r.kind not in ("joined", "left")]  # presence: staff only
        if len(decided) >= len(lines):
            break
        await asyncio.sleep(0.1)
    assert [r.kind for r in decided][: len(lines)] == [r["kind"] for r in lines]
    presence = [(r.kind, r.data["participant"]) for r in audit if r.kind in ("joined", "left")]
    assert presence[:2] == [("joined", "A1234BC"), ("joined", "v1")]
    assert sorted(presence[2:]) == [("left", "A1234BC"), ("left", "v1")]
    # every incoming track was recorded (encoded off the loop): the visitor's camera and both mics
    folder = server.record_dir / call.call_id
    with av.open(str(folder / "v1.video.1.webm")) as video:
        frames = [f for f in video.decode(video=0)]
    # the analysed camera's archive holds the frames of replay's 6 fps grid and every analysed one,
    # at their call times
    assert len(frames) > 5 and (frames[0].width, frames[0].height) == (640, 480)
    for mic in ("v1.audio.1.webm", "A1234BC.audio.1.webm"):
        with av.open(str(folder / mic)) as audio:
            assert sum(f.samples for f in audio.decode(audio=0)) > 48_000
    sidecar = json.loads((folder / "v1.video.1.json").read_text())
    assert 0 < sidecar["first_frame_call_t"] < 30
    # ... and both cameras at their full rate, as received (muxed, never decoded): several times
    # the analysed archive's frames
    for camera in ("v1.camera.1.webm", "A1234BC.camera.1.webm"):
        with av.open(str(folder / camera)) as full:
            assert sum(1 for _ in full.decode(video=0)) > 2 * len(frames), camera

    # replaying the archive of the analysed camera reaches the live call's decisions
    document = json.loads(BOOKING.read_text())
    document.update(
        call_id=call.call_id,
        starts_at=call.booking.starts_at.isoformat(),
        ends_at=call.booking.ends_at.isoformat(),
    )
    (folder / "booking.json").write_text(json.dumps(document))
    shutil.copy(BOOKING.parent / "v1.jpg", folder / "v1.jpg")
    offset = str(sidecar["first_frame_call_t"])
    replay = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "replay",
            str(folder / "v1.video.1.webm"),
            "--booking",
            str(folder / "booking.json"),
            "--offset",
            offset,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    replayed = [json.loads(line) for line in replay.stdout.splitlines()]

    def decisions(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
        keep = []
        for r in records:
            if r["kind"] == "state":
                keep.append(("state", r["state"], tuple(r.get("reasons", [])), r.get("call_t", r["t"])))
        return keep

    # the same states with the same reasons at about the same call times, and an alert for every
    # pause reason. (Alerts raised while already paused hang on identity votes, which the lossy
    # archive can tip either way: those may differ.)
    live_decisions, replay_decisions = decisions(lines), decisions(replayed)
    pause_reasons = {reason for d in live_decisions for reason in d[2]}
    assert pause_reasons <= {r["reason"] for r in replayed if r["kind"] == "alert"}
    assert [d[:3] for d in replay_decisions] == [d[:3] for d in live_decisions], (
        live_decisions,
        replay_decisions,
    )
    # live, ticks advance the clock between analysed frames; replay, only the frames do: a decision
    # can land on a later archived frame. Allow up to the second archived frame after the live time
    # (one frame for the tick, one for the lossy archive) or 1 s, whichever is later: the archive's
    # own frame times set the bound, so a loaded machine's sparse analysis cannot fail the test.
    archived = [sidecar["first_frame_call_t"] + float(f.time - frames[0].time) for f in frames]
    for live_d, replay_d in zip(live_decisions, replay_decisions, strict=True):
        live_t, replay_t = float(live_d[3]), float(replay_d[3])
        after = [t for t in archived if t >= live_t - 0.05][:2]
        latest = max([live_t + 1.0, *(t + 0.05 for t in after[-1:])])
        assert live_t - 1.0 < replay_t <= latest, (live_d, replay_d, after)
    assert AuditLog(server.store).verify().ok


async def test_capture_attempt_pauses_until_staff_resume(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    call = book(server, "call-capture")
    prison, _ = await join_device(server, call, "prisoner", clips["clean"])
    visitor, _ = await join_device(server, call, "visitor", clips["clean"])
    staff = server.hub.subscribe()
    try:
        await wait_state(visitor, "live", timeout=120)
        await visitor.send({"type": "capture_attempt", "detail": "getDisplayMedia"})
        paused = await wait_state(prison, "paused", timeout=5)
        assert paused["reasons"] == ["capture_attempt"]
        # the recheck passes (the face is clean) but the call waits for staff
        await asyncio.sleep(call.config.recheck_clean_for_s + 2.0)
        assert call.state is State.PAUSED
        await call.staff_resume(staff="officer-1")
        await wait_state(visitor, "live", timeout=60)
        seen = []
        while not staff.queue.empty():
            seen.append(await staff.__anext__())
        assert any(r["kind"] == "alert" and r["reason"] == "capture_attempt" for r in seen)
        assert all(r["call_id"] == "call-capture" for r in seen)
    finally:
        staff.close()
        await visitor.close()
        await prison.close()
        await call.close()


async def test_time_up_ends_the_call_and_closes_the_devices(
    server: Server, clips: dict[str, list[np.ndarray]]
) -> None:
    call = book(server, "call-timeup", ends_in=8.0)
    prison, _ = await join_device(server, call, "prisoner", clips["clean"])
    visitor, _ = await join_device(server, call, "visitor", clips["clean"])
    try:
        ended = await visitor.expect("ended", timeout=20)
        assert ended["reasons"] == ["time_up"]
        assert (await prison.expect("ended", timeout=5))["reasons"] == ["time_up"]
        await visitor.expect("closed", timeout=5)  # the server closed the signalling connection
        assert call.state is State.ENDED
        assert not call.devices
        # the link no longer works
        late = Device(f"ws://127.0.0.1:{server.port}/ws/call")
        await late.open()
        refused = await late.join(token_of(server, call, "visitor"))
        assert refused["type"] == "error" and refused["code"] == "call_over"
        await late.close()
        # the relay closed its peer connections: the device's media transport goes down
        assert visitor.pc is not None
        for _ in range(100):
            if visitor.pc.connectionState in ("closed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert visitor.pc.connectionState in ("closed", "failed")
    finally:
        await visitor.close()
        await prison.close()
        await call.close()

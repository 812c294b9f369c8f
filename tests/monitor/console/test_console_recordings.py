"""Recorded calls in the console: listed in the history, served to the right staff only.

The files are written by the real recorder (``monitor.record.feed_recorder.FeedRecorder``, the code behind
``monitor serve --record``) from frames of the clean fixture clip and a tone."""

from __future__ import annotations

import asyncio
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import numpy as np
import pytest
from aiortc.contrib.media import MediaRelay
from console_site import Site
from test_console_access import learns_nothing

from monitor.console import recordings
from monitor.media.tracks import Feed
from monitor.record.feed_recorder import FeedRecorder

CLEAN = Path(__file__).resolve().parents[3] / "fixtures" / "clips" / "clean.webm"
FRAMES = 8


def clip_frames(count: int) -> list[Any]:
    with av.open(str(CLEAN)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.reformat(format="yuv420p"))
            if len(frames) == count:
                return frames
    raise AssertionError("clip too short")


def tone_frames(count: int) -> list[av.AudioFrame]:
    frames = []
    for i in range(count):
        t = (np.arange(960) + i * 960) / 48_000
        mono = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
        samples = np.repeat(mono, 2).reshape(1, -1)  # packed stereo, as aiortc delivers microphones
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate = 48_000
        frames.append(frame)
    return frames


async def record(folder: Path, participant: str, start_t: float = 3.5, video_frames: int = FRAMES) -> None:
    """One video part and one audio part of ``participant``, as a live call writes them."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (test set-up: one mkdir)
    relay = MediaRelay()
    for kind, frames, step in (
        ("video", clip_frames(video_frames), 1 / 30),
        ("audio", tone_frames(25), 0.02),
    ):
        recorder = FeedRecorder(
            Feed(relay, kind, participant), folder, f"{participant}.{kind}", lambda: 0.0, pushed=True
        )
        for i, frame in enumerate(frames):
            recorder.push(frame, start_t + i * step)
        await recorder.stop()
        assert not recorder.errors and recorder.dropped == 0


def served_frames(data: bytes) -> list[Any]:
    with av.open(io.BytesIO(data), mode="r") as container:
        return list(container.decode(video=0))


async def test_history_lists_and_serves_the_calls_recordings(site: Site) -> None:
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    cookie = await site.login("alice")
    history = (await site.get("/console/api/calls/call-ex", cookie)).json()
    files = {f["file"]: f for f in history["recordings"]}
    assert set(files) == {"v1.video.1.webm", "v1.audio.1.webm"}
    video = files["v1.video.1.webm"]
    assert video["kind"] == "video" and video["source"] == "v1" and video["part"] == 1
    assert video["first_frame_call_t"] == 3.5
    assert video["url"] == "/console/api/recordings/call-ex/v1.video.1.webm"
    on_disk = (site.record_dir / "call-ex" / "v1.video.1.webm").read_bytes()
    assert video["bytes"] == len(on_disk)

    reply = await site.get(video["url"], cookie)
    assert reply.status == 200 and reply.headers["content-type"] == "video/webm"
    assert reply.body == on_disk and reply.headers["accept-ranges"] == "bytes"
    frames = served_frames(reply.body)
    assert len(frames) == FRAMES and (frames[0].width, frames[0].height) == (640, 480)
    # what was recorded is what plays back: the first frame matches the clip's (VP8 at high quality)
    original = clip_frames(1)[0].to_ndarray(format="gray").astype(int)
    assert np.abs(frames[0].to_ndarray(format="gray").astype(int) - original).mean() < 3

    audio = await site.get(files["v1.audio.1.webm"]["url"], cookie)
    assert audio.status == 200 and audio.headers["content-type"] == "audio/webm"
    with av.open(io.BytesIO(audio.body), mode="r") as container:
        assert container.streams.audio[0].codec_context.name == "opus"


async def test_byte_ranges_let_a_player_seek(site: Site) -> None:
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    cookie = await site.login("alice")
    url = "/console/api/recordings/call-ex/v1.video.1.webm"
    whole = (await site.get(url, cookie)).body
    first = await site.get(url, cookie, Range="bytes=0-99")
    assert first.status == 206 and first.body == whole[:100]
    assert first.headers["content-range"] == f"bytes 0-99/{len(whole)}"
    tail = await site.get(url, cookie, Range="bytes=-10")
    assert tail.status == 206 and tail.body == whole[-10:]
    rest = await site.get(url, cookie, Range=f"bytes={len(whole) - 5}-")
    assert rest.status == 206 and rest.body == whole[-5:]
    beyond = await site.get(url, cookie, Range=f"bytes={len(whole)}-")
    assert beyond.status == 416 and beyond.headers["content-range"] == f"bytes */{len(whole)}"
    several = await site.get(url, cookie, Range="bytes=0-1,5-6")  # not supported: the whole file
    assert several.status == 200 and several.body == whole


async def test_no_session_learns_nothing(site: Site) -> None:
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    for path in (
        "/console/api/recordings/call-ex/v1.video.1.webm",
        "/console/api/recordings/call-ex/nothing.webm",
        "/console/api/recordings/no-such-call/v1.video.1.webm",
        "/console/api/recordings/%2e%2e/%2e%2e",
    ):
        for cookie in (None, "forged-token"):
            reply = await site.get(path, cookie)
            assert reply.status == 401 and learns_nothing(reply.body), path


async def test_other_prisons_calls_and_unknown_files_are_the_same_404(site: Site) -> None:
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    await record(site.record_dir / "call-other", "v1")
    alice, bob = await site.login("alice"), await site.login("bob")
    not_found = await site.get("/console/api/recordings/no-such-call/v1.video.1.webm", alice)
    assert not_found.status == 404
    for cookie, path in (
        (bob, "/console/api/recordings/call-ex/v1.video.1.webm"),
        (alice, "/console/api/recordings/call-other/v1.video.1.webm"),
        (alice, "/console/api/recordings/call-ex/v9.video.1.webm"),
        (alice, "/console/api/recordings/call-ex/v1.video.2.webm"),
    ):
        reply = await site.get(path, cookie)
        assert (reply.status, reply.body) == (404, not_found.body), path
        assert learns_nothing(reply.body)
    assert (await site.get("/console/api/calls/call-ex", bob)).status == 404
    theirs = (await site.get("/console/api/calls/call-other", bob)).json()
    assert [f["file"] for f in theirs["recordings"]] == ["v1.video.1.webm", "v1.audio.1.webm"]


@pytest.mark.parametrize(
    "path",
    (
        "/console/api/recordings/call-ex/../call-other/v1.video.1.webm",
        "/console/api/recordings/call-ex/..%2fcall-other%2fv1.video.1.webm",
        "/console/api/recordings/call-ex/%2e%2e%2fcall-other%2fv1.video.1.webm",
        "/console/api/recordings/call-ex/%2E%2E/v1.video.1.webm",
        "/console/api/recordings/%2e%2e/call-other",
        "/console/api/recordings/call-ex%2f..%2fcall-other/v1.video.1.webm",
        "/console/api/recordings/call-ex/{secret}",
        "/console/api/recordings/call-ex/{quoted}",
        "/console/api/recordings/{quoted}/x",
        "/console/api/recordings/call-ex/linked.video.1.webm",
        "/console/api/recordings/call-ex/timeline.jsonl",
        "/console/api/recordings/call-ex/v1.video.1.json",
        "/console/api/recordings/call-ex/v1.video.1.webm%00",
        "/console/api/recordings/call-ex/%ff%fe.webm",
        "/console/api/recordings/call-ex%00/v1.video.1.webm",
        "/console/api/recordings/%ed%a0%80/v1.video.1.webm",
        "/console/api/recordings/.call-ex/v1.video.1.webm",
        "/console/api/recordings/call-ex",
        "/console/api/recordings/",
    ),
)
async def test_traversal_and_other_files_are_refused(site: Site, tmp_path: Path, path: str) -> None:
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    await record(site.record_dir / "call-other", "v1")
    (site.record_dir / "call-ex" / "timeline.jsonl").write_text('{"t": 0}\n')
    secret = tmp_path / "secret.video.1.webm"
    secret.write_bytes(b"secret bytes")
    other = site.record_dir / "call-other" / "v1.video.1.webm"
    os.symlink(other, site.record_dir / "call-ex" / "linked.video.1.webm")
    alice = await site.login("alice")
    path = path.format(secret=secret, quoted=quote(str(secret), safe=""))
    reply = await site.get(path, alice)
    assert (reply.status, reply.json()) == (404, {"error": "not found"}), path
    listed = (await site.get("/console/api/calls/call-ex", alice)).json()["recordings"]
    assert [f["file"] for f in listed] == ["v1.video.1.webm", "v1.audio.1.webm"]  # the link is not listed


async def test_a_call_folder_that_escapes_the_record_dir_is_ignored(site: Site, tmp_path: Path) -> None:
    assert site.record_dir is not None
    elsewhere = tmp_path / "elsewhere"
    await record(elsewhere, "v1")
    os.symlink(elsewhere, site.record_dir / "call-ex")
    alice = await site.login("alice")
    assert (await site.get("/console/api/calls/call-ex", alice)).json()["recordings"] == []
    assert (await site.get("/console/api/recordings/call-ex/v1.video.1.webm", alice)).status == 404


async def test_large_files_are_served_in_bounded_parts_and_never_read_whole(site: Site) -> None:
    """A 150 MB recording (sparse: no disk): every answer to a byte range carries at most
    MAX_PART_BYTES from where it was asked, read on its own; eight players at once cost the server
    eight parts, not eight files; without a range the whole file is refused with 413."""
    assert site.record_dir is not None
    await record(site.record_dir / "call-ex", "v1")
    big = site.record_dir / "call-ex" / "v1.video.2.webm"
    size = 150 * 2**20
    with big.open("wb") as handle:
        handle.seek(size - 4)
        handle.write(b"tail")
    alice = await site.login("alice")
    url = "/console/api/recordings/call-ex/v1.video.2.webm"
    part = recordings.MAX_PART_BYTES
    reset_peak_rss()
    before = rss_mb()
    # eight players at once, each on a thread of its own (the loop's default executor also runs the
    # server's reads: sharing it, the clients would starve the server)
    headers = [{"Cookie": f"monitor_session={alice}", "Range": f"bytes={n * 10 * 2**20}-"} for n in range(8)]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as players:
        replies = await asyncio.gather(
            *(loop.run_in_executor(players, site._request, "GET", url, h) for h in headers)
        )
    grew = peak_rss_mb() - before
    for n, reply in enumerate(replies):
        start = n * 10 * 2**20
        assert reply.status == 206 and len(reply.body) == part
        assert reply.headers["content-range"] == f"bytes {start}-{start + part - 1}/{size}"
    assert grew < 8 * part / 2**20 + 120, f"RSS grew {grew:.0f} MB for 8 parts of 4 MB"
    last = await site.get(url, alice, Range="bytes=-4")
    assert (last.status, last.body, last.headers["content-range"]) == (
        206,
        b"tail",
        f"bytes {size - 4}-{size - 1}/{size}",
    )
    whole = await site.get(url, alice)
    assert whole.status == 413 and b"byte ranges" in whole.body and learns_nothing(whole.body)
    history = (await site.get("/console/api/calls/call-ex", alice)).json()
    assert {f["file"]: f["bytes"] for f in history["recordings"]}["v1.video.2.webm"] == size
    assert (await site.get("/console/api/recordings/call-ex/v1.video.1.webm", alice)).status == 200


def rss_mb() -> float:
    return status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    return status_kb("VmHWM") / 1024


def status_kb(field: str) -> int:
    found = re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text())
    assert found is not None, field
    return int(found.group(1))


def reset_peak_rss() -> None:
    """Start VmHWM from the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


async def test_a_call_without_recordings_lists_none(site: Site) -> None:
    alice = await site.login("alice")
    assert (await site.get("/console/api/calls/call-ex", alice)).json()["recordings"] == []
    assert recordings.listing(None, "call-ex") == []  # serve without --record
    assert recordings.find(None, "call-ex", "v1.video.1.webm") is None


def test_byte_range_parsing() -> None:
    assert recordings.byte_range(None, 100) is None
    assert recordings.byte_range("bytes=0-9", 100) == (0, 9)
    assert recordings.byte_range("bytes=90-200", 100) == (90, 99)
    assert recordings.byte_range("bytes=-30", 100) == (70, 99)
    assert recordings.byte_range("bytes=-300", 100) == (0, 99)
    for unsatisfiable in ("bytes=100-", "bytes=9-3", "bytes=-0"):
        with pytest.raises(recordings.RangeNotSatisfiable):
            recordings.byte_range(unsatisfiable, 100)
    assert recordings.byte_range("bytes=-", 100) is None
    assert recordings.byte_range("items=0-9", 100) is None


async def test_monitor_serve_record_dir_reaches_the_console(tmp_path: Path) -> None:
    """``monitor serve --record DIR``: the server hands DIR to the console."""
    from console_site import PASSWORD, booking_now

    from monitor.admin import import_booking
    from monitor.server.serve import Server
    from monitor.store import auth
    from monitor.store.database import Store
    from policies.config import load_policy

    store = Store(tmp_path / "monitor.db")
    auth.add_staff(store, "alice", "HMP Example", PASSWORD)
    import_booking(store, booking_now("call-served"))
    record_dir = tmp_path / "records"
    await record(record_dir / "call-served", "v1")
    server = Server([], load_policy(), port=0, analysis_workers=0, store=store, record_dir=record_dir)
    await server.start()
    try:
        site = Site(server.port, store, None, None, None)  # type: ignore[arg-type]  # HTTP helpers only
        alice = await site.login("alice")
        history = (await site.get("/console/api/calls/call-served", alice)).json()
        assert [f["file"] for f in history["recordings"]] == ["v1.video.1.webm", "v1.audio.1.webm"]
        reply = await site.get(history["recordings"][0]["url"], alice)
        assert reply.status == 200 and len(served_frames(reply.body)) == FRAMES
    finally:
        await server.stop()
        store.close()

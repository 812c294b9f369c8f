"""`monitor replay` on real fixture clips: command line, bad input, offsets, evidence, atomic output."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from monitor.cli import main
from monitor.errors import UserError
from monitor.media.video_file import Video
from monitor.record.timeline import decode_line
from monitor.replay.command import ProgressBar, atomic_output
from monitor.replay.events import parse_events
from monitor.replay.replay import ReplayStats
from policies.events import StaffConfirmIdentity, StaffRejectIdentity

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "fixtures"
CLEAN = FIXTURES / "clips" / "clean.webm"
CLEAN_BOOKING = FIXTURES / "bookings" / "clean" / "booking.json"
WALK_IN = FIXTURES / "clips" / "unbooked_walk_in.webm"
WALK_IN_BOOKING = FIXTURES / "bookings" / "unbooked_walk_in" / "booking.json"
MONITOR = ROOT / ".venv" / "bin" / "monitor"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, object]], str]:
    code = main(argv)
    captured = capsys.readouterr()
    lines = [decode_line(line) for line in captured.out.splitlines() if line.strip()]
    return code, lines, captured.err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("monitor: error: ")
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------- events files


def test_events_parse_sorted_with_fields() -> None:
    text = (
        '{"t": 20, "kind": "staff_pause", "note": "shouting", "staff": "o1"}\n'
        "\n"
        '{"t": 12.5, "kind": "capture_attempt"}\n'
        '{"t": 30, "kind": "staff_end"}\n'
        '{"t": 25, "kind": "staff_resume"}\n'
    )
    events = parse_events(text, "ev.jsonl")
    assert [(e.t, e.kind, e.line) for e in events] == [
        (12.5, "capture_attempt", 3),
        (20.0, "staff_pause", 1),
        (25.0, "staff_resume", 5),
        (30.0, "staff_end", 4),
    ]
    assert events[1].fields == {"note": "shouting", "staff": "o1"}
    pause = events[1].event(100.0)
    assert pause.t == 120.0 and pause.note == "shouting"  # type: ignore[union-attr]
    assert events[1].record(100.0) == {
        "t": 20.0,
        "kind": "event",
        "event": "staff_pause",
        "note": "shouting",
        "staff": "o1",
        "call_t": 120.0,
    }
    assert events[0].event(0.0, "v1").source == "v1"  # type: ignore[union-attr]


def test_staff_identity_events_parse() -> None:
    text = (
        '{"t": 9, "kind": "staff_confirm_identity", "track": 2, "participant": "v1", "staff": "o1"}\n'
        '{"t": 11, "kind": "staff_reject_identity", "track": 0, "source": "tablet"}\n'
    )
    confirm, reject = parse_events(text, "ev.jsonl")
    assert confirm.fields == {"track": 2, "participant": "v1", "staff": "o1"}
    assert confirm.event(100.0, "v1") == StaffConfirmIdentity(109.0, "v1", 2, "v1", "o1")
    assert reject.event(0.0, "v1") == StaffRejectIdentity(11.0, "tablet", 0, "")  # its own source
    assert reject.record(0.0) == {
        "t": 11.0,
        "kind": "event",
        "event": "staff_reject_identity",
        "track": 0,
        "source": "tablet",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "ev.jsonl:2: not valid JSON"),
        ("[1, 2]", "ev.jsonl:2: each line must be a JSON object"),
        ('{"t": 1, "kind": "dance"}', "ev.jsonl:2: kind must be one of capture_attempt, staff_pause"),
        ('{"kind": "staff_end"}', "ev.jsonl:2: t must be a number of seconds"),
        ('{"t": "5", "kind": "staff_end"}', "ev.jsonl:2: t must be a number of seconds"),
        ('{"t": true, "kind": "staff_end"}', "ev.jsonl:2: t must be a number of seconds"),
        ('{"t": -1, "kind": "staff_end"}', "ev.jsonl:2: t must not be negative"),
        ('{"t": 1, "kind": "staff_resume", "note": "x"}', "ev.jsonl:2: unknown field 'note'"),
        ('{"t": 1, "kind": "staff_pause", "note": 5}', "ev.jsonl:2: note must be text"),
        ('{"t": 1, "kind": "staff_reject_identity"}', "ev.jsonl:2: staff_reject_identity needs track"),
        (
            '{"t": 1, "kind": "staff_confirm_identity", "track": 2}',
            "ev.jsonl:2: staff_confirm_identity needs participant",
        ),
        (
            '{"t": 1, "kind": "staff_confirm_identity", "track": 2, "participant": " "}',
            "ev.jsonl:2: participant must not be empty",
        ),
        ('{"t": 1, "kind": "staff_reject_identity", "track": "2"}', "ev.jsonl:2: track must be a face track"),
        ('{"t": 1, "kind": "staff_reject_identity", "track": 1.5}', "ev.jsonl:2: track must be a face track"),
        ('{"t": 1, "kind": "staff_reject_identity", "track": -1}', "ev.jsonl:2: track must be a face track"),
        (
            '{"t": 1, "kind": "staff_reject_identity", "track": true}',
            "ev.jsonl:2: track must be a face track",
        ),
        (
            '{"t": 1, "kind": "staff_reject_identity", "track": 1, "participant": "v1"}',
            "ev.jsonl:2: unknown field 'participant' for staff_reject_identity",
        ),
        (
            '{"t": 1, "kind": "staff_reject_identity", "track": 1, "source": 3}',
            "ev.jsonl:2: source must be text",
        ),
    ],
)
def test_bad_events_name_the_line(line: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_events('{"t": 0, "kind": "capture_attempt"}\n' + line + "\n", "ev.jsonl")
    assert str(info.value).startswith(message), str(info.value)


# ---------------------------------------------------------------- bad input on the command line


def test_missing_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run(["replay", str(tmp_path / "nope.webm"), "--booking", str(CLEAN_BOOKING)], capsys)
    assert code == 1 and lines == []
    assert "nope.webm: video file not found" in one_error_line(err)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a video\n", "cannot read video"),
        (CLEAN.read_bytes()[:20_000], "no decodable video frames"),
    ],
)
def test_unreadable_video(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.webm"
    bad.write_bytes(content)
    code, _, err = run(["replay", str(bad), "--booking", str(CLEAN_BOOKING)], capsys)
    assert code == 1 and message in one_error_line(err)


def test_still_image_is_not_a_video(capsys: pytest.CaptureFixture[str]) -> None:
    photo = FIXTURES / "bookings" / "clean" / "v1.jpg"
    code, _, err = run(["replay", str(photo), "--booking", str(CLEAN_BOOKING)], capsys)
    assert code == 1 and "is a still image, not a video" in one_error_line(err)


def test_truncated_video_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut.webm"
    cut.write_bytes(CLEAN.read_bytes()[:300_000])  # ~2.5 s of the 10 s the header declares
    out = tmp_path / "timeline.jsonl"
    code, _, err = run(["replay", str(cut), "--booking", str(CLEAN_BOOKING), "--out", str(out)], capsys)
    assert code == 1 and "truncated or corrupt" in one_error_line(err)
    assert list(tmp_path.iterdir()) == [cut]  # no timeline, no temp file left behind


def test_bad_booking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(CLEAN_BOOKING.read_text())
    doc["participants"][0]["main_caller"] = False
    booking = tmp_path / "booking.json"
    booking.write_text(json.dumps(doc))
    shutil.copy(CLEAN_BOOKING.parent / "v1.jpg", tmp_path / "v1.jpg")
    code, _, err = run(["replay", str(CLEAN), "--booking", str(booking)], capsys)
    assert code == 1 and "participants" in one_error_line(err) and "main caller" in err


def test_booking_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    booking = tmp_path / "booking.json"
    booking.write_text("{")
    code, _, err = run(["replay", str(CLEAN), "--booking", str(booking)], capsys)
    assert code == 1 and "not valid JSON" in one_error_line(err)


def test_bad_events_file_names_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"t": 1, "kind": "staff_pause"}\n{"t": 2, "kind": "staf_end"}\n')
    argv = ["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--events", str(events)]
    code, _, err = run(argv, capsys)
    assert code == 1 and f"{events}:2: kind must be one of" in one_error_line(err)


@pytest.mark.slow
def test_reference_photo_without_a_face(tmp_path: Path) -> None:
    """A landscape photo (a real negative, no person) as the reference: refused, one line, exit 1."""
    shutil.copy(CLEAN_BOOKING, tmp_path / "booking.json")
    landscape = FIXTURES / "negatives" / "iceblock_no_face.jpg"
    shutil.copy(landscape, tmp_path / "v1.jpg")
    out = tmp_path / "timeline.jsonl"
    proc = subprocess.run(
        [str(MONITOR), "replay", str(CLEAN), "--booking", str(tmp_path / "booking.json"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 1
    line = one_error_line(proc.stderr)
    assert "v1.jpg" in line and "no face" in line
    assert proc.stdout == "" and not out.exists()


def test_offset_outside_the_call(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--offset", "1800"], capsys)
    assert code == 1 and "not within the booked call" in one_error_line(err)


def test_out_directory_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no" / "such" / "t.jsonl"
    code, _, err = run(["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--out", str(out)], capsys)
    assert code == 1 and "does not exist" in one_error_line(err)


# ---------------------------------------------------------------- real replays


@pytest.mark.slow
def test_offset_maps_first_frame_into_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The clip replayed as the last 5 s of the 30-minute call: the call ends at ends_at (time_up)."""
    out = tmp_path / "t.jsonl"
    code, _, err = run(
        ["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--offset", "1795", "--out", str(out)], capsys
    )
    assert code == 0, err
    lines = [decode_line(x) for x in out.read_text().splitlines()]
    assert all(line["t"] >= 0 for line in lines)  # t counts from the first frame
    assert all(line["call_t"] == pytest.approx(line["t"] + 1795, abs=0.002) for line in lines[1:])
    states = [(x["t"], x["state"], x.get("reasons")) for x in lines if x["kind"] == "state"]
    # the call started (verifying) at call time 0, 1795 s before the piece: in force at its first frame
    assert states[0] == (0.0, "verifying", None) and lines[0]["call_t"] == 0.0
    assert states[-1] == (5.0, "ended", ["time_up"])
    assert lines[-1]["kind"] == "state"  # nothing after the end
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp file renamed away


@pytest.mark.slow
def test_evidence_for_every_alert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evidence = tmp_path / "evidence"
    code, lines, err = run(
        ["replay", str(WALK_IN), "--booking", str(WALK_IN_BOOKING), "--evidence", str(evidence)], capsys
    )
    assert code == 0, err
    alerts = [x for x in lines if x["kind"] == "alert"]
    assert {a["reason"] for a in alerts} >= {"unbooked_face"}
    names = [str(a["evidence"]) for a in alerts]
    assert sorted(p.name for p in evidence.iterdir()) == sorted(names)
    for alert, name in zip(alerts, names, strict=True):
        image = cv2.imread(str(evidence / name))
        assert image is not None and image.shape == (480, 640, 3)
        assert str(alert["reason"]) in name
    # the unbooked alert's frame shows both faces: the booked man on the left, boxes drawn in colour
    unbooked = next(n for a, n in zip(alerts, names, strict=True) if a["reason"] == "unbooked_face")
    image = cv2.imread(str(evidence / unbooked))
    assert image is not None
    red = (image[:, :, 2] > 200) & (image[:, :, 1] < 60) & (image[:, :, 0] < 60)  # the "unbooked" box
    green = (image[:, :, 1] > 160) & (image[:, :, 0] < 80) & (image[:, :, 2] < 80)  # the booked man's
    assert red[:, 320:].sum() > 200 and green[:, :320].sum() > 200


@pytest.mark.slow
def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    proc = subprocess.run(
        [str(MONITOR), "replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout == ""  # native model logs are silenced, no progress bar
    assert decode_line(out.read_text().splitlines()[0])["kind"] == "state"


def test_progress_bar_draws_on_its_stream() -> None:
    stream = io.StringIO()
    bar = ProgressBar(10.0, stream)
    bar.drawn = -1.0
    bar(5.0, ReplayStats())
    bar.finish()
    text = stream.getvalue()
    assert text.startswith("\r[") and " 50%" in text and "5.0/10.0 s" in text


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_output(out) as handle:
        handle.write("new\n")
        raise RuntimeError("boom")
    assert out.read_text() == "old\n" and list(tmp_path.iterdir()) == [out]
    with atomic_output(out) as handle:
        handle.write("new\n")
    assert out.read_text() == "new\n"


def test_video_times_come_from_pts() -> None:
    with Video(CLEAN) as video:
        times = [f.t for f in video.frames()]
        assert video.info.width == 640 and video.info.height == 480 and video.info.codec == "vp8"
    assert len(times) == 300 and times[0] == 0.0
    assert times[-1] == pytest.approx(299 / 30, abs=0.002)


def test_cli_parser_has_replay() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--booking", "--policy", "--events", "--out", "--evidence", "--offset"):
        assert flag in proc.stdout


@pytest.mark.slow
def test_inapplicable_events_are_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A staff resume while the call is live is illegal; an event after the video's end never happens."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"t": 5, "kind": "staff_resume"}\n{"t": 100, "kind": "staff_end"}\n')
    argv = ["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--events", str(events)]
    code, lines, err = run(argv, capsys)
    assert code == 0
    assert [x for x in lines if x["kind"] == "event"] == []
    assert [x["state"] for x in lines if x["kind"] == "state"] == ["verifying", "live"]
    notes = err.strip().splitlines()
    assert len(notes) == 2 and all(n.startswith(f"monitor: note: {events}: line ") for n in notes)
    assert "not allowed while the call is live" in notes[0] and "after the end of the video" in notes[1]


@pytest.mark.slow
def test_refused_identity_events_are_noted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A staff verdict that names a person not booked, or a device not on the call, is refused by
    the session (InvalidEvent) and noted like an illegal event; the decisions are those without it."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"t": 4, "kind": "staff_confirm_identity", "track": 1, "participant": "v9"}\n'
        '{"t": 5, "kind": "staff_reject_identity", "track": 1, "source": "tablet"}\n'
    )
    argv = ["replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--events", str(events)]
    code, lines, err = run(argv, capsys)
    assert code == 0
    assert [x for x in lines if x["kind"] == "event"] == []
    assert [x["state"] for x in lines if x["kind"] == "state"] == ["verifying", "live"]
    notes = err.strip().splitlines()
    assert notes == [
        f"monitor: note: {events}: line 1: 'v9' is not booked on 'v1''s side (not applied)",
        f"monitor: note: {events}: line 2: no device 'tablet' on this call (not applied)",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("suffix", "codec"), [(".avi", "mpeg4"), (".mp4", "libx264")])
def test_other_containers_give_the_same_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, codec: str
) -> None:
    """The clean clip re-encoded into another container and codec replays to the same states."""
    import av

    target = tmp_path / f"clean{suffix}"
    with av.open(str(CLEAN)) as src, av.open(str(target), "w") as dst:
        stream: Any = dst.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        stream.bit_rate = 2_000_000
        for frame in src.decode(video=0):
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    code, lines, err = run(["replay", str(target), "--booking", str(CLEAN_BOOKING)], capsys)
    assert code == 0, err
    states = [(x["t"], x["state"]) for x in lines if x["kind"] == "state"]
    golden = (FIXTURES / "expected" / "clean.timeline.jsonl").read_text().splitlines()
    expected = [decode_line(x) for x in golden]
    want = [(x["t"], x["state"]) for x in expected if x["kind"] == "state"]
    assert [s for _, s in states] == [s for _, s in want]
    assert all(abs(a - b) <= 0.5 for (a, _), (b, _) in zip(states, want, strict=True))


@pytest.mark.slow
def test_progress_bar_when_stderr_is_a_terminal(tmp_path: Path) -> None:
    import os
    import pty

    controller, terminal = pty.openpty()
    out = tmp_path / "t.jsonl"
    try:
        proc = subprocess.run(
            [str(MONITOR), "replay", str(CLEAN), "--booking", str(CLEAN_BOOKING), "--out", str(out)],
            stderr=terminal,
            stdout=subprocess.PIPE,
            timeout=240,
            check=False,
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal side is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(controller)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0 and proc.stdout == b""
    assert "\r[" in shown and "x" in shown  # the bar with its speed
    assert "W0000" not in shown and "INFO:" not in shown  # native model logs stay silenced
    assert out.exists()


@pytest.mark.slow
def test_frames_the_change_gate_brings_in_are_analysed_as_changed() -> None:
    """The walk-in: while the call is calm, her entrance fires the change gate; each frame it brings
    in reaches the (real) pipeline marked ``changed``, and those still steady get a person check at
    once (an unsteady frame is on the busy pace, person check every second, anyway); the model runs
    are counted."""
    from monitor.analysis.enrol import enrol_booking
    from monitor.analysis.frame import Frame
    from monitor.analysis.pipeline import FramePipeline, FrameResult
    from monitor.bookings import load_booking
    from monitor.replay.replay import Replay
    from policies.config import load_policy
    from policies.events import Role

    config = load_policy()
    booking = load_booking(WALK_IN_BOOKING, config)
    visitors, _prisoner = enrol_booking(booking)
    pipeline = FramePipeline(visitors, source=booking.main_caller.id, role=Role.VISITOR)
    seen: list[tuple[bool, bool, dict[str, int]]] = []
    process = pipeline.process

    def recorded(frame: np.ndarray | Frame, t: float, *, changed: bool = False) -> FrameResult:
        result = process(frame, t, changed=changed)
        seen.append((changed, result.steady, result.work))
        return result

    pipeline.process = recorded  # type: ignore[method-assign,assignment]
    replay = Replay(booking, config, pipeline=pipeline)
    try:
        with Video(WALK_IN) as video:
            stats = replay.run(video, (), lambda record: None)
    finally:
        replay.close()
    changed = [(steady, work) for flag, steady, work in seen if flag]
    assert stats.gated >= 1 and len(changed) == stats.gated
    checked = [work["pose"] for steady, work in changed if steady]
    assert checked and all(n == 1 for n in checked)  # her first frames: the face stages see nothing yet
    assert len(seen) == stats.analysed
    for kind in ("mesh", "identity", "pose"):
        assert stats.work[kind] == sum(work[kind] for _flag, _steady, work in seen)
    assert 3 <= stats.work["identity"] < stats.analysed  # sampled, not run on every analysed frame


def test_a_calm_pace_slower_than_the_tracker_remembers_is_refused() -> None:
    """At 1 calm frame every 2 s the tracker (which forgets a face unseen for 2 s) would open a
    new, unidentified track on every calm frame; 1 a second is well within its memory."""
    from monitor.bookings import load_booking
    from monitor.replay.replay import Replay
    from policies.config import load_policy

    config = load_policy()
    booking = load_booking(CLEAN_BOOKING, config)
    with pytest.raises(UserError, match=r"calm analysis rate 0\.5/s leaves 2\.00 s .* 2 s"):
        Replay(booking, config, calm_fps=0.5)
    Replay(booking, config, calm_fps=1.0).close()

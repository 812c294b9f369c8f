"""The front <-> relay worker wire (monitor/relay_workers/ipc.py) and the worker's recording hand-over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.bookings import load_booking
from monitor.relay_workers import ipc
from monitor.relay_workers.worker import keep_earlier_parts
from policies.config import load_policy

BOOKING = Path(__file__).resolve().parents[3] / "fixtures" / "bookings" / "clean" / "booking.json"


def test_a_message_round_trips_and_replies_say_ok_or_why() -> None:
    line = ipc.encode("join", id=3, conn=7, call="c-1", participant="v1")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = ipc.decode(line)
    assert message.kind == "join" and message["conn"] == 7 and message["participant"] == "v1"
    ok = ipc.decode(ipc.reply(3, {"sdp": "v=0"}))
    assert ok["ok"] is True and ok["result"] == {"sdp": "v=0"}
    refused = ipc.decode(ipc.reply(4, code="token_in_use", message="this link is already in use"))
    assert refused["ok"] is False and refused["code"] == "token_in_use"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "JSON object"),
        (b'{"kind": "launch"}\n', "unknown message kind"),
        (b'{"kind": "leave"}\n', "missing field 'conn'"),
        (b'{"kind": "leave", "conn": "7"}\n', "leave.conn: expected int, got str"),
        (b'{"kind": "leave", "conn": true}\n', "got bool"),
        (b'{"kind": "leave", "conn": 7, "more": 1}\n', "unexpected fields ['more']"),
        (
            b'{"kind": "staff", "id": 1, "call": "c", "action": "delete", "note": "", "staff": ""}\n',
            "staff.action",
        ),
    ],
)
def test_bad_lines_are_refused_naming_what_is_wrong(line: bytes, says: str) -> None:
    with pytest.raises(ipc.WireError) as caught:
        ipc.decode(line)
    assert says in str(caught.value)


def test_lines_over_the_limit_are_refused_both_ways() -> None:
    huge = "x" * ipc.MAX_LINE
    with pytest.raises(ipc.WireError, match="over the"):
        ipc.encode("offer", id=1, conn=1, sdp=huge)
    with pytest.raises(ipc.WireError, match="over the"):
        ipc.decode(json.dumps({"kind": "offer", "id": 1, "conn": 1, "sdp": huge}).encode())
    with pytest.raises(ipc.WireError, match="missing field"):
        ipc.encode("offer", id=1, conn=1)  # what decode would refuse is never sent


def test_a_booking_and_a_policy_cross_exactly() -> None:
    config = load_policy()
    booking = load_booking(BOOKING, config)
    assert ipc.unblob(ipc.blob(booking)) == booking
    assert ipc.unblob(ipc.blob(config)) == config


def test_a_replaced_worker_keeps_the_recordings_of_the_one_before(tmp_path: Path) -> None:
    for name in (
        "v1.video.1.webm",
        "v1.video.1.json",
        "A1234BC.audio.1.webm",
        "A1234BC.camera.1.webm",
        "timeline.jsonl",
    ):
        (tmp_path / name).write_text(name)
    assert keep_earlier_parts(tmp_path) == 4
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "A1234BC-before-restart-1.audio.1.webm",
        "A1234BC-before-restart-1.camera.1.webm",
        "timeline.jsonl",  # appended to by the new call, never renamed
        "v1-before-restart-1.video.1.json",
        "v1-before-restart-1.video.1.webm",
    ]
    assert (tmp_path / "v1-before-restart-1.video.1.webm").read_text() == "v1.video.1.webm"
    (tmp_path / "v1.video.1.webm").write_text("second process")
    assert keep_earlier_parts(tmp_path) == 1
    assert (tmp_path / "v1-before-restart-2.video.1.webm").read_text() == "second process"
    assert keep_earlier_parts(tmp_path / "missing") == 0


def test_a_negative_worker_count_is_one_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.cli",
            "serve",
            "--relay-workers",
            "-1",
            "--db",
            str(tmp_path / "m.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "--relay-workers -1: must be 0" in done.stderr and "Traceback" not in done.stderr

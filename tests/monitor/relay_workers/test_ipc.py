"""The front <-> relay worker wire (monitor/relay_workers/ipc.py) and the worker's recording hand-over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.bookings import load_booking
from monitor.call.stats import CallStats, DeviceStats, TapStats
from monitor.media.tracks import TrackStats
from monitor.relay_workers import ipc
from monitor.relay_workers.worker import keep_earlier_parts
from monitor.workers.analysis_pool import StreamStats
from policies.config import load_policy

BOOKING = Path(__file__).resolve().parents[3] / "fixtures" / "bookings" / "clean" / "booking.json"


def test_a_message_round_trips_and_replies_say_ok_or_why() -> None:
    line = ipc.encode(ipc.Join(3, conn=7, call="c-1", participant="v1"))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"kind": "join", "id": 3, "conn": 7, "call": "c-1", "participant": "v1"}
    message = ipc.decode(line)
    assert message == ipc.Join(3, conn=7, call="c-1", participant="v1")
    ok = ipc.decode(ipc.encode(ipc.reply(3, {"sdp": "v=0"})))
    assert isinstance(ok, ipc.Reply) and ok.ok is True and ok.result == {"sdp": "v=0"}
    refused = ipc.decode(ipc.encode(ipc.reply(4, code="token_in_use", message="this link is already in use")))
    assert isinstance(refused, ipc.Reply) and refused.ok is False and refused.code == "token_in_use"


def test_every_kind_crosses_as_its_own_class() -> None:
    hello = ipc.Hello("blob", None, [{"urls": "stun:example.org"}], ["127.0.0.1"], 2)
    staff = ipc.Staff(5, call="c-1", action="pause", note="", staff="officer")
    snapshot = ipc.Snapshot(calls=(), lag_ms=3, analysis_restarts=0)
    confirm = ipc.StaffIdentity(6, call="c-1", source="v1", track=2, participant="v1", staff="officer")
    reject = ipc.StaffIdentity(7, call="c-1", source="v1", track=2, participant=None, staff="officer")
    for message in (
        hello,
        staff,
        confirm,
        reject,
        snapshot,
        ipc.Stop(),
        ipc.HubRecord("c-1", {"kind": "alert"}, None),
    ):
        assert ipc.decode(ipc.encode(message)) == message
    assert isinstance(ipc.decode(ipc.encode(snapshot)).lag_ms, float)  # type: ignore[attr-defined]
    assert set(ipc.KINDS) >= {"hello", "join", "reply", "send", "close", "hub", "snapshot", "ended"}


def test_a_snapshot_crosses_with_its_typed_figures_and_a_bad_one_is_named_by_its_path() -> None:
    device = DeviceStats("v1", "visitor", True, (TrackStats("video", 10, 2), TrackStats("audio", 0, 50)))
    call = CallStats("c-1", "live", (device,), (TapStats("v1", "c-1/v1", 30),))
    streams = {"c-1/v1": StreamStats(12, 0.5, 0.1, None)}
    snapshot = ipc.Snapshot((ipc.CallSnapshot(call, streams),), lag_ms=4.5, analysis_restarts=1)
    assert ipc.decode(ipc.encode(snapshot)) == snapshot
    data = json.loads(ipc.encode(snapshot))
    data["calls"][0]["call"]["devices"][0]["tracks"][1]["forwarded"] = "0"
    with pytest.raises(ipc.WireError) as caught:
        ipc.decode(json.dumps(data).encode())
    assert "snapshot.calls[0].call.devices[0].tracks[1].forwarded: expected int, got str" in str(caught.value)
    del data["calls"][0]["streams"]
    with pytest.raises(ipc.WireError, match=r"snapshot\.calls\[0\]: missing field 'streams'"):
        ipc.decode(json.dumps(data).encode())


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
        (b'{"kind": 7}\n', "unknown message kind 7"),
        (b'{"kind": "hub", "call": "c", "record": [], "evidence": null}\n', "hub.record: expected dict"),
        (b'{"kind": "hub", "call": "c", "record": {}, "evidence": 1}\n', "hub.evidence: expected str"),
        (
            b'{"kind": "hello", "config": "", "record_dir": null, "ice_servers": [], "ice_hosts": [1],'
            b' "analysis_workers": 1}\n',
            "hello.ice_hosts[0]: expected str, got int",
        ),
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
        ipc.encode(ipc.Offer(1, conn=1, sdp=huge))
    with pytest.raises(ipc.WireError, match="over the"):
        ipc.decode(json.dumps({"kind": "offer", "id": 1, "conn": 1, "sdp": huge}).encode())


def test_what_decode_would_refuse_is_never_sent() -> None:
    with pytest.raises(ipc.WireError, match=r"offer\.sdp: expected str, got NoneType"):
        ipc.encode(ipc.Offer(1, conn=1, sdp=None))  # type: ignore[arg-type]
    with pytest.raises(ipc.WireError, match=r"leave\.conn: expected int, got bool"):
        ipc.encode(ipc.Leave(conn=True))
    with pytest.raises(ipc.WireError, match=r"staff\.action: expected one of"):
        ipc.encode(ipc.Staff(1, call="c", action="delete", note="", staff=""))  # type: ignore[arg-type]
    with pytest.raises(ipc.WireError, match=r"staff_identity\.track: expected int, got str"):
        ipc.encode(ipc.StaffIdentity(1, call="c", source="v1", track="2", participant=None, staff=""))  # type: ignore[arg-type]
    with pytest.raises(ipc.WireError, match="not a message kind"):
        ipc.encode(ipc.Request(1))


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

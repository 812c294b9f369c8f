from __future__ import annotations

import pickle
from datetime import UTC, date, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from analysis_media import MEDIA, image
from support.hostile import bomb_png

from monitor.analysis.enrol import EnrolmentError, enrol_booking, enrol_photos
from monitor.errors import UserError
from policies.booking import Booking, Prisoner, Visitor


def _write(tmp_path: Path, name: str, bgr: np.ndarray) -> Path:
    path = tmp_path / name
    assert cv2.imwrite(str(path), bgr)
    return path


def test_enrolment_of_good_photos_is_picklable() -> None:
    e = enrol_photos({"v1": [MEDIA / "single_face.jpg"], "v2": [MEDIA / "obama.jpg", MEDIA / "obama2.jpg"]})
    assert e.ids == ("v1", "v2") and [len(p.embeddings) for p in e.people] == [1, 2]
    back = pickle.loads(pickle.dumps(e))
    assert back.ids == e.ids and np.array_equal(back.people[1].embeddings[1], e.people[1].embeddings[1])
    assert np.linalg.norm(e.people[1].embeddings[0] - e.people[1].embeddings[1]) < 0.45


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("640px-IceBlockNearJoekullsarlon.jpg", "640px-IceBlockNearJoekullsarlon.jpg: no face found"),
        ("multi_face.jpg", "multi_face.jpg: 5 faces found"),
        ("obama_partial_face.jpg", "obama_partial_face.jpg: the face is partial"),
    ],
)
def test_unusable_photos_are_refused_naming_the_file(name: str, problem: str) -> None:
    with pytest.raises(EnrolmentError) as err:
        enrol_photos({"v1": [MEDIA / name]})
    assert str(err.value).startswith(problem)
    assert isinstance(err.value, UserError)


def test_too_small_dark_or_blurred_photos_are_refused(tmp_path: Path) -> None:
    photo = image("single_face.jpg")
    small = _write(tmp_path, "jane_small.jpg", cv2.resize(photo, (140, 138), interpolation=cv2.INTER_AREA))
    dark = _write(tmp_path, "jane_dark.jpg", (photo * 0.25).astype(np.uint8))
    blurred = _write(tmp_path, "jane_blurred.jpg", cv2.GaussianBlur(photo, (0, 0), 6))
    for path, words in ((small, "face too small"), (dark, "dark"), (blurred, "blurred")):
        with pytest.raises(EnrolmentError, match=words) as err:
            enrol_photos({"jane": [path]})
        assert str(err.value).startswith(path.name)


def test_missing_or_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(EnrolmentError, match=r"nope\.jpg: file not found"):
        enrol_photos({"v1": [tmp_path / "nope.jpg"]})
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(EnrolmentError, match=r"junk\.jpg: .*junk\.jpg is not an image file"):
        enrol_photos({"v1": [junk]})


def test_a_decompression_bomb_is_refused_from_its_header_before_decoding(tmp_path: Path) -> None:
    """A 20000x20000 PNG of 50 KB (1.2 GB decoded): refused by its header, naming the file."""
    bomb = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(EnrolmentError, match=r"^bomb\.png: .*bomb\.png is 20000x20000 pixels; a reference"):
        enrol_photos({"v1": [bomb]})


def _booking(prisoner_photos: tuple[Path, ...]) -> Booking:
    start = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    return Booking(
        call_id="c1",
        prison="HMP Test",
        prisoner=Prisoner("p1", "Prisoner", prisoner_photos),
        starts_at=start,
        ends_at=start.replace(minute=30),
        participants=(
            Visitor("v1", "Man", date(1980, 1, 1), True, (MEDIA / "single_face.jpg",)),
            Visitor("v2", "Astronaut", date(1960, 1, 1), False, (MEDIA / "astronaut.png",)),
        ),
    )


def test_enrol_booking_splits_visitors_and_prisoner() -> None:
    visitors, prisoner = enrol_booking(_booking((MEDIA / "obama.jpg",)))
    assert visitors.ids == ("v1", "v2")
    assert prisoner is not None and prisoner.ids == ("p1",)
    visitors, prisoner = enrol_booking(_booking(()))
    assert visitors.ids == ("v1", "v2") and prisoner is None

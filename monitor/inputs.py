"""Files people give us, read within limits: a size cap before reading, a depth cap before parsing
JSON, and an image measured from its header before anything decodes it.

Theory of operation: a booking, an events file or a reference photo comes from outside, and the
cost of reading it must not be the sender's to choose. So :func:`read_text` looks at the file's
size and refuses one over the cap before reading it (and never reads more than the cap, should it
grow meanwhile); :func:`decode_json` counts the nesting of brackets outside strings and refuses a
document deeper than the cap before ``json`` recurses into it (100,000 ``[`` are a
``RecursionError`` in the standard library); :func:`check_photo` reads the width and height from
the image header (PNG IHDR, JPEG SOF, BMP, WebP, TIFF IFD) and refuses a photo with more pixels
than a reference photo needs, so a 20000x20000 PNG of a few kilobytes (3.8 GB and several
seconds once decoded) is refused in milliseconds. Every problem is one :class:`UserError` naming
the file (or the field) and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from monitor.errors import UserError

MAX_BOOKING_BYTES = 256 * 1024  # a booking of five people is about 1 KB
MAX_EVENTS_BYTES = 4 * 1024 * 1024  # tens of thousands of injected events
MAX_JSON_DEPTH = 16  # a booking nests 4 deep
MAX_PHOTO_BYTES = 20 * 1024 * 1024
MAX_PHOTO_PIXELS = 50_000_000  # a 48-megapixel phone photo (8000x6000) passes
IMAGE_KINDS = "JPEG, PNG, BMP, WebP or TIFF"

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\Z)|[\[{]|[\]}]', re.DOTALL)  # a string runs to its end


def read_text(path: Path, what: str, max_bytes: int) -> str:
    """The UTF-8 text of ``path`` (a byte order mark is dropped); ``what`` names the file in
    messages ("booking file"). A file over ``max_bytes`` is refused before it is read."""
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = b"" if size > max_bytes else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    if size > max_bytes or len(data) > max_bytes:
        raise UserError(f"{path}: {what} larger than {_size(max_bytes)} ({_size(max(size, len(data)))})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {what} is not UTF-8 text (bad byte at offset {exc.start})") from None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n // 1024} KB" if n >= 1024 else f"{n} bytes"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def json_depth_over(text: str, max_depth: int) -> bool:
    """True when brackets outside strings nest deeper than ``max_depth`` anywhere in ``text``."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif bracket in "]}":
            depth -= 1
    return False


def decode_json(text: str, where: str, max_depth: int = MAX_JSON_DEPTH) -> object:
    """One JSON document; ``where`` starts every message (a file, or ``file:line``). Nesting
    deeper than ``max_depth`` and duplicate keys are refused."""
    if json_depth_over(text, max_depth):
        raise UserError(f"{where}: JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        where_in = f"at line {exc.lineno} column {exc.colno}"
        raise UserError(f"{where}: not valid JSON: {exc.msg} {where_in}") from None
    except ValueError as exc:  # a duplicate key; a number of more than 4,300 digits
        raise UserError(f"{where}: not valid JSON: {exc}") from None


def read_json(path: Path, what: str, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> object:
    """:func:`read_text` then :func:`decode_json`, messages naming ``path``."""
    return decode_json(read_text(path, what, max_bytes), str(path), max_depth)


# -- images ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageHeader:
    kind: str  # "JPEG", "PNG", "BMP", "WebP", "TIFF"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class DamagedHeader(ValueError):
    """The file starts like an image of ``kind`` but its header cannot be read."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _exactly(handle: BinaryIO, count: int, kind: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise DamagedHeader(kind)
    return data


def _jpeg(handle: BinaryIO) -> tuple[int, int]:
    """Walk the segments to the first start-of-frame marker (skipping APPn, tables, comments)."""
    handle.seek(2)
    for _ in range(10_000):  # a real file reaches its SOF in a few dozen segments
        byte = _exactly(handle, 1, "JPEG")
        if byte != b"\xff":
            raise DamagedHeader("JPEG")
        marker = _exactly(handle, 1, "JPEG")[0]
        while marker == 0xFF:  # fill bytes
            marker = _exactly(handle, 1, "JPEG")[0]
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            continue
        (length,) = struct.unpack(">H", _exactly(handle, 2, "JPEG"))
        if length < 2:
            raise DamagedHeader("JPEG")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">xHH", _exactly(handle, 5, "JPEG"))
            return width, height
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            raise DamagedHeader("JPEG")
        handle.seek(length - 2, os.SEEK_CUR)
    raise DamagedHeader("JPEG")


def _tiff(handle: BinaryIO, order: str) -> tuple[int, int]:
    handle.seek(4)
    (ifd,) = struct.unpack(order + "I", _exactly(handle, 4, "TIFF"))
    handle.seek(ifd)
    (count,) = struct.unpack(order + "H", _exactly(handle, 2, "TIFF"))
    found: dict[int, int] = {}
    for _ in range(count):
        tag, kind, _n, raw = struct.unpack(order + "HHI4s", _exactly(handle, 12, "TIFF"))
        if tag in (256, 257):
            if kind == 3:  # SHORT
                found[tag] = struct.unpack(order + "H", raw[:2])[0]
            elif kind == 4:  # LONG
                found[tag] = struct.unpack(order + "I", raw)[0]
    if 256 not in found or 257 not in found:
        raise DamagedHeader("TIFF")
    return found[256], found[257]


def _webp(head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        (bits,) = struct.unpack("<I", head[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    raise DamagedHeader("WebP")


def image_header(handle: BinaryIO) -> ImageHeader | None:
    """Kind and size of the image in ``handle`` from its header alone; None when it is none of
    the kinds the analysis decodes. Raises :class:`DamagedHeader`."""
    handle.seek(0)
    head = handle.read(32)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise DamagedHeader("PNG")
        width, height = struct.unpack(">II", head[16:24])
        return ImageHeader("PNG", width, height)
    if head.startswith(b"\xff\xd8\xff"):
        return ImageHeader("JPEG", *_jpeg(handle))
    if head.startswith(b"BM"):
        if len(head) < 26:
            raise DamagedHeader("BMP")
        (dib,) = struct.unpack("<I", head[14:18])
        if dib == 12:  # BITMAPCOREHEADER: 16-bit sizes
            width, height = struct.unpack("<HH", head[18:22])
        else:
            width, height = struct.unpack("<ii", head[18:26])
        return ImageHeader("BMP", abs(width), abs(height))  # a negative height: stored top-down
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageHeader("WebP", *_webp(head))
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return ImageHeader("TIFF", *_tiff(handle, "<" if head[:2] == b"II" else ">"))
    return None


def check_photo(field: str, photo: Path) -> ImageHeader:
    """A reference photo that may be decoded: a readable image file of one of the kinds the
    analysis decodes, at most ``MAX_PHOTO_BYTES`` and ``MAX_PHOTO_PIXELS``, judged from its size
    on disk and its header. Else a UserError starting with ``field``."""
    try:
        with photo.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            header = image_header(handle)
    except FileNotFoundError:
        raise UserError(f"{field}: reference photo not found: {photo}") from None
    except IsADirectoryError:
        raise UserError(f"{field}: reference photo is a directory: {photo}") from None
    except OSError as exc:
        raise UserError(f"{field}: cannot read reference photo {photo}: {exc.strerror or exc}") from None
    except DamagedHeader as exc:
        problem = f"is not a readable image (its {exc.kind} header is damaged)"
        raise UserError(f"{field}: {photo} {problem}") from None
    if header is None:
        raise UserError(f"{field}: {photo} is not an image file ({IMAGE_KINDS})")
    if size > MAX_PHOTO_BYTES:
        raise UserError(
            f"{field}: {photo} is {_size(size)}; a reference photo may be at most {_size(MAX_PHOTO_BYTES)}"
        )
    if header.width == 0 or header.height == 0:
        raise UserError(f"{field}: {photo} is not a readable image (its {header.kind} header says 0 pixels)")
    if header.pixels > MAX_PHOTO_PIXELS:
        raise UserError(
            f"{field}: {photo} is {header.width}x{header.height} pixels; a reference photo may have "
            f"at most {MAX_PHOTO_PIXELS // 1_000_000} million (e.g. 8000x6000): scale it down"
        )
    return header


__all__ = [
    "MAX_BOOKING_BYTES",
    "MAX_EVENTS_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_PHOTO_BYTES",
    "MAX_PHOTO_PIXELS",
    "DamagedHeader",
    "ImageHeader",
    "check_photo",
    "decode_json",
    "image_header",
    "json_depth_over",
    "read_json",
    "read_text",
]

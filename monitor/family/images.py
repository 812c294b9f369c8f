"""What an uploaded file is, from its own bytes, and how many pixels an image has, from its header.

The type a browser claims is never trusted: a file is a JPEG, a PNG or a PDF by its leading bytes,
or it is refused. An image's width and height are read from its header alone (PNG's ``IHDR``,
JPEG's start-of-frame segment) so that a small file announcing a huge picture (a "decompression
bomb") is refused before anything decodes it. Every refusal is an :class:`ImageError` in plain words.
"""

from __future__ import annotations

import struct

JPEG = "image/jpeg"
PNG = "image/png"
PDF = "application/pdf"
#: A phone's full-resolution photo is 12-50 megapixels; more than this is refused undecoded.
MAX_PIXELS = 50_000_000
MAX_SIDE = 12_000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, ...; not DHT C4, JPG C8, DAC CC)
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class ImageError(ValueError):
    """The file is not what it must be; the message says so in plain words."""


def sniff(data: bytes) -> str | None:
    """JPEG, PNG or PDF by the file's leading bytes, else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(_PNG_MAGIC):
        return PNG
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise ImageError("this JPEG file is damaged")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            if at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data before any frame header: not a usable JPEG
            break
        at += 2 + length
    raise ImageError("this JPEG file is damaged (no picture size in it)")


def dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG or PNG header, without decoding the picture."""
    kind = sniff(data)
    if kind == PNG:
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageError("this PNG file is damaged")
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if kind == JPEG:
        return _jpeg_size(data)
    raise ImageError("this is not a photo (JPEG or PNG)")


def check_image(data: bytes) -> str:
    """The type of a photo that may be decoded (JPEG or PNG within the pixel limits), else ImageError."""
    kind = sniff(data)
    if kind not in (JPEG, PNG):
        raise ImageError("this is not a photo: send a JPEG or PNG picture")
    width, height = dimensions(data)
    if width == 0 or height == 0:
        raise ImageError("this photo has no picture in it")
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise ImageError(
            f"this photo is too large ({width} x {height} pixels); the most we take is "
            f"{MAX_PIXELS // 1_000_000} megapixels: send a smaller copy"
        )
    return kind

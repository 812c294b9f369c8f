"""Files made to cost their reader: a decompression-bomb PNG, JSON nested deep. Shared by the tests
of the booking files, enrolment and the file fuzzing (tests/ is on sys.path)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def bomb_png(path: Path, side: int = 20_000) -> Path:
    """A real, valid PNG of ``side`` x ``side`` black pixels (1-bit grey) that compresses to
    kilobytes: decoded as a colour picture it takes side * side * 3 bytes (1.2 GB at 20,000)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte "none", then the row's bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def nested_json(depth: int, opener: str = "[") -> str:
    """``depth`` arrays (or objects) inside each other."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth

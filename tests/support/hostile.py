"""Input made to hurt its reader, for the tests of the parsers and the fuzz tests (tests/ is on
sys.path): hostile text (hypothesis strategies: lone surrogates, control characters, line
separators, path tricks, long strings), a decompression-bomb PNG, JSON nested deep.

A lone surrogate cannot travel as WebSocket text (UTF-8 cannot encode it): a client sends it as
JSON's ``"\\ud800"`` escape, which ``json.dumps`` writes by default (``ensure_ascii``)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from hypothesis import strategies as st

#: Strings every parser must refuse or keep harmless, whatever field they land in.
NASTY_STRINGS = (
    "\ud800",
    "x\udfff",
    "\udc80\ud800",
    "a\x00b",
    "\x1b[2J",
    "line\nbreak",
    "cr\r",
    "tab\t",
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    "..",
    "../escaped-call",
    "..\\x",
    "/etc/passwd",
    "%2e%2e%2f",
    "-flag",
    " ",
    "",
    "Zoë 王芳 🙂",
)

#: Any text, with what UTF-8 and terminals choke on mixed in (hypothesis leaves surrogates out of
#: ``st.text()`` by default).
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.builds(
        lambda piece, n: piece * n, st.sampled_from(("x", "\U0001f600", "\ud800")), st.integers(100, 6000)
    ),
    st.text(
        st.characters(codec=None, categories=["L", "N", "P", "S", "Zs", "Cs", "Cc", "Zl", "Zp", "Cf"]),
        max_size=40,
    ),
)

#: Text for id fields: the safe set, just outside it, and hostile text.
hostile_ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,70}", fullmatch=True),
    st.sampled_from(("call-flow", "call-fuzz", "A1234BC", "v1", "v2")),
    hostile_text,
)


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

"""A call's recorded files (``monitor serve --record DIR``) for the console's history view.

Theory of operation
-------------------
``monitor.record.feed_recorder`` writes ``DIR/<call_id>/<participant>.<video|audio>.<part>.webm`` and
``monitor.record.camera_recorder`` ``<participant>.camera.<part>.webm``, each with a
sidecar ``.json`` naming the call time of the part's first frame. The console lists those files
in a call's history and serves them to staff of the call's prison. A requested name is never
joined onto a path as given: it must equal, character for character, a name found by listing
the call's own folder (regular files only, no symlinks), and that folder must be a direct child
of ``DIR``. So ``..``, encoded ``%2e%2e``, absolute paths and other calls' files are simply not in
the list and get the same 404 as a missing file.

``websockets`` answers plain HTTP from ``process_request`` with a ``Response`` holding the whole
body in memory, so no answer carries more than ``MAX_PART_BYTES``, and only those bytes are read
from the file (:func:`read_part`: open, seek, read). A byte range (``Range: bytes=a-b``, what a
browser's ``<video>`` and ``<audio>`` elements always send) is answered with 206 and at most that
many bytes from ``a``; the ``Content-Range`` says which, and the player asks for the rest as it
plays (RFC 9110 lets a server send less than an open range asks for). A request without a range
gets the whole file only when it fits in one answer, else a 413 saying to ask for ranges or copy
the file from ``DIR``. So eight players on a 150 MB recording hold 8 x 4 MB, not 8 x 150 MB.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

MAX_PART_BYTES = 4 * 1024 * 1024
_MEDIA = re.compile(r"^(?P<source>.+)\.(?P<kind>video|camera|audio)\.(?P<part>[0-9]+)\.webm$")
_RANGE = re.compile(r"^bytes=(?P<start>[0-9]*)-(?P<end>[0-9]*)$")
CONTENT_TYPES = {"video": "video/webm", "camera": "video/webm", "audio": "audio/webm"}
#: the full-rate camera first (to watch), then the analysed frames (what replay reproduces), then sound
KIND_ORDER = {"camera": 0, "video": 1, "audio": 2}


@dataclass(frozen=True, slots=True)
class RecordedFile:
    path: Path
    name: str
    source: str
    kind: str  # "camera" (full rate, as received), "video" (the analysed frames) or "audio"
    part: int
    size: int
    first_frame_call_t: float | None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.kind]


def call_folder(record_dir: Path | None, call_id: str) -> Path | None:
    """``DIR/<call_id>`` if it exists and really is a direct child of ``DIR``."""
    if record_dir is None or not call_id:
        return None
    try:
        root = record_dir.resolve(strict=True)
        folder = (record_dir / call_id).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if folder.parent != root or not folder.is_dir():
        return None
    return folder


def _first_frame_t(folder: Path, name: str) -> float | None:
    try:
        sidecar = json.loads((folder / (name.removesuffix(".webm") + ".json")).read_text())
        value = sidecar.get("first_frame_call_t")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def list_files(record_dir: Path | None, call_id: str) -> list[RecordedFile]:
    """The call's recorded media files, by source, kind and part."""
    folder = call_folder(record_dir, call_id)
    if folder is None:
        return []
    found = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _MEDIA.match(entry.name)
        if match is None or entry.is_symlink():
            continue
        try:
            stat = entry.lstat()
        except OSError:
            continue
        if not entry.is_file():
            continue
        found.append(
            RecordedFile(
                entry,
                entry.name,
                match["source"],
                match["kind"],
                int(match["part"]),
                stat.st_size,
                _first_frame_t(folder, entry.name),
            )
        )
    return sorted(found, key=lambda f: (f.source, KIND_ORDER[f.kind], f.part))


def find(record_dir: Path | None, call_id: str, name: str) -> RecordedFile | None:
    """The listed file called exactly ``name``, else None."""
    return next((f for f in list_files(record_dir, call_id) if f.name == name), None)


def url(call_id: str, name: str) -> str:
    return f"/console/api/recordings/{quote(call_id, safe='')}/{quote(name, safe='')}"


def listing(record_dir: Path | None, call_id: str) -> list[dict[str, Any]]:
    """The history JSON's ``recordings`` entries."""
    return [
        {
            "file": f.name,
            "source": f.source,
            "kind": f.kind,
            "part": f.part,
            "bytes": f.size,
            "first_frame_call_t": f.first_frame_call_t,
            "url": url(call_id, f.name),
        }
        for f in list_files(record_dir, call_id)
    ]


class RangeNotSatisfiable(ValueError):
    """The Range header asks for bytes the file of ``size`` bytes does not have (416)."""

    def __init__(self, header: str, size: int) -> None:
        super().__init__(header)
        self.size = size


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)``, inclusive, for one satisfiable range; None: no usable Range header, serve
    the whole file. Raises :class:`RangeNotSatisfiable`."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match["start"] and not match["end"]):
        return None  # several ranges or another unit: ignore the header (allowed by RFC 9110)
    if not match["start"]:  # suffix: the last n bytes
        length = int(match["end"])
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(header, size)
        return max(0, size - length), size - 1
    start = int(match["start"])
    end = int(match["end"]) if match["end"] else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(header, size)
    return start, min(end, size - 1)


class WholeFileTooLarge(ValueError):
    """A request without a byte range for a file larger than one answer may carry (413)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass(frozen=True, slots=True)
class Part:
    """What one answer carries: ``data`` from byte ``start`` of a file of ``size`` bytes;
    ``ranged``: an answer to a byte range (206 with a Content-Range), else the whole file (200)."""

    data: bytes
    start: int
    size: int
    ranged: bool

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.start + len(self.data) - 1}/{self.size}"


def read_part(path: Path, range_header: str | None) -> Part:
    """Read only what one answer carries (blocking: run it in a thread). The size is the file's
    now (a recording still being written grows). Raises :class:`RangeNotSatisfiable`,
    :class:`WholeFileTooLarge` and OSError."""
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        span = byte_range(range_header, size)
        if span is None:
            if size > MAX_PART_BYTES:
                raise WholeFileTooLarge(size)
            return Part(handle.read(MAX_PART_BYTES), 0, size, ranged=False)
        start, end = span
        handle.seek(start)
        return Part(handle.read(min(end - start + 1, MAX_PART_BYTES)), start, size, ranged=True)

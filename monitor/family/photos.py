"""Face photos and ID photos checked with the enrolment models, in a process of their own.

Theory of operation
-------------------
Enrolment (``monitor.analysis.enrol``: exactly one face, large, frontal, sharp, lit) takes a few
hundred milliseconds of models and would hold the event loop, and the GIL of a thread, for that
long; so it runs in one spawned worker process, started on the first upload (its models load
once, a few seconds) and reused. Only bytes go to it and only bytes and small tuples come back:
the process never touches the store or the disk.

- A *face photo* is decoded (the header was checked first, ``images.check_image``), turned upright
  as its EXIF says, scaled down to at most ``FACE_SIDE`` pixels, and written as a new JPEG without
  any metadata (a phone's photo carries its GPS position); that JPEG is what is enrolled and kept as
  the person's reference photo, so the live call checks faces against exactly what was enrolled.
- An *ID photo* is checked the same way (its face must be one usable face) and its face's
  embedding is kept, so staff see how far it is from the face photo; the document itself is
  stored encrypted, never as a reference photo.

A refusal is one sentence saying what is wrong with the photo and what to do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from dataclasses import dataclass
from typing import Any

FACE_SIDE = 1600
CHECK_SIDE = 2400
ADVICE = {
    "face_photo": "take a new photo of just that person's face, looking at the camera, in good light",
    "id_document": "take a clear photo of the whole ID, close enough that the face on it is sharp",
}

_enroller: Any = None


@dataclass(frozen=True, slots=True)
class Checked:
    embedding: bytes  # float64 little-endian
    jpeg: bytes | None  # the normalised face photo to keep (face photos only)


class PhotoRefused(ValueError):
    """The photo cannot be enrolled; the message says why and what to do."""


def _start() -> None:
    global _enroller
    from monitor.analysis.enrol import Enroller
    from monitor.analysis.runtime import limit_threads

    limit_threads()
    _enroller = Enroller()


def _scaled(image: Any, side: int) -> Any:
    import cv2

    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return image
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _check(data: bytes, kind: str) -> tuple[str, Any]:
    """In the worker: ("ok", (embedding, jpeg or None)) or ("refused", reason)."""
    import cv2
    import numpy as np

    from monitor.analysis.enrol import EnrolmentError

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # EXIF orientation applied
    if image is None:
        return "refused", "the picture cannot be read"
    jpeg = None
    if kind == "face_photo":
        ok, encoded = cv2.imencode(".jpg", _scaled(image, FACE_SIDE), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            return "refused", "the picture cannot be read"
        jpeg = encoded.tobytes()
        image = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    else:
        image = _scaled(image, CHECK_SIDE)
    try:
        embedding = _enroller.embed_image(image, "photo")
    except EnrolmentError as exc:
        return "refused", str(exc).removeprefix("photo: ")
    return "ok", (np.asarray(embedding, "<f8").tobytes(), jpeg)


class PhotoChecker:
    """The enrolment worker process, started on first use; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    async def check(self, data: bytes, kind: str) -> Checked:
        """Enrol one photo (``face_photo`` or ``id_document``); PhotoRefused says why not."""
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start
            )
        loop = asyncio.get_running_loop()
        try:
            verdict, value = await loop.run_in_executor(self._pool, _check, data, kind)
        except concurrent.futures.process.BrokenProcessPool:
            self._pool = None  # started again on the next photo
            raise PhotoRefused("we could not check this photo just now; please try again") from None
        if verdict != "ok":
            raise PhotoRefused(f"we could not use this photo: {value}; {ADVICE[kind]}")
        embedding, jpeg = value
        return Checked(embedding, jpeg)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

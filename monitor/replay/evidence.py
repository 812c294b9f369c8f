"""``monitor replay --evidence DIR``: a JPEG for every alert, of the analysed frame behind it.

The frame is the analysed one just before the alert's time, or the one whose observation made it
fire when none is earlier; each face is boxed and labelled by who the analysis thinks it is
(``monitor.analysis.evidence.annotate``) and the alert is named in a bar at the top. An alert
before the first analysed frame (an event at t = 0) has no evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2

from monitor.analysis.evidence import annotate
from monitor.analysis.frame import Frame
from monitor.analysis.frame_path import Picture
from monitor.analysis.pipeline import FrameResult
from monitor.errors import UserError
from policies.decisions import Alert


@dataclass(frozen=True, slots=True)
class Seen:
    """An analysed frame kept for evidence."""

    t: float  # media time
    picture: Picture  # converted to BGR only if evidence is drawn
    result: FrameResult


class EvidenceWriter:
    """Writes the evidence images into ``directory``, numbered in order, and keeps the last two
    analysed frames to choose from."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0
        self.previous: Seen | None = None
        self.current: Seen | None = None

    def seen(self, frame: Seen) -> None:
        self.previous, self.current = self.current, frame

    def for_alert(self, alert: Alert, t_media: float) -> str | None:
        """The evidence image's file name (written now), or None when no frame was analysed yet."""
        previous, current = self.previous, self.current
        seen = previous if (previous is not None and current is not None and t_media < current.t) else current
        if seen is None:
            return None
        return self.write(alert, t_media, seen)

    def write(self, alert: Alert, t_media: float, seen: Seen) -> str:
        self.count += 1
        name = f"{self.count:03d}-t{t_media:08.3f}-{alert.reason.value}.jpg"
        title = f"t={t_media:.2f}s  {alert.reason.value}  (frame t={seen.t:.2f}s)"
        image = annotate(Frame.from_rgb(seen.picture.rgb()).bgr, seen.result, title)
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:  # pragma: no cover - encoding a valid BGR image does not fail
            raise UserError(f"{self.directory}: could not encode evidence image {name}")
        try:
            (self.directory / name).write_bytes(data.tobytes())
        except OSError as exc:
            raise UserError(f"{self.directory}: cannot write evidence image: {exc.strerror or exc}") from None
        return name


__all__ = ["EvidenceWriter", "Seen"]

"""Evidence images: a frame with every analysed face boxed and labelled (for alerts and debugging)."""

from __future__ import annotations

import cv2
import numpy as np

from monitor.analysis.pipeline import FrameResult
from policies.events import Verdict, Visibility

_COLOURS = {  # BGR
    Verdict.MATCH: (60, 180, 60),
    Verdict.UNBOOKED: (40, 40, 230),
    Verdict.PENDING: (0, 200, 230),
}


def annotate(frame_bgr: np.ndarray, result: FrameResult) -> np.ndarray:
    """A copy of ``frame_bgr`` with faces boxed (green match, red unbooked, yellow pending),
    labelled ``#track who distance [visibility] [lighting]``; rejected detector blips in grey."""
    out = frame_bgr.copy()
    h, w = out.shape[:2]
    scale = max(0.4, min(w, h) / 900)
    for box in result.rejected:
        c = box.clipped(w, h)
        cv2.rectangle(out, (int(c.x), int(c.y)), (int(c.x + c.w), int(c.y + c.h)), (128, 128, 128), 1)
    for face in result.faces:
        c = face.box_px.clipped(w, h)
        colour = _COLOURS[face.face.verdict]
        thick = 1 if face.face.visibility is not Visibility.FULL else 2
        p0, p1 = (int(c.x), int(c.y)), (int(c.x + c.w), int(c.y + c.h))
        cv2.rectangle(out, p0, p1, colour, thick)
        (tw, th), base = cv2.getTextSize(face.label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = p0[1] - 4 if p0[1] - th - base - 4 > 0 else p1[1] + th + 4
        cv2.rectangle(out, (p0[0], y - th - 2), (p0[0] + tw + 2, y + base), colour, -1)
        cv2.putText(
            out, face.label, (p0[0] + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    obs = result.observation
    if obs.persons_without_face:
        cv2.putText(
            out,
            f"{obs.persons_without_face} person(s) without a visible face",
            (8, h - 10),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (40, 40, 230),
            1,
            cv2.LINE_AA,
        )
    return out

"""Evidence images: a frame with every analysed face boxed and labelled by who the analysis thinks
it is: replay's ``--evidence`` images (from the frame's :class:`FrameResult`) and the live
console's evidence frames (from the :class:`~policies.events.Observation` the worker sent back for
that frame, whose faces carry their boxes), drawn the same way."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

from monitor.analysis.box import Box
from policies.events import Face, Observation, Verdict, Visibility

if TYPE_CHECKING:  # the pipeline loads the models: a relay drawing live evidence must not
    from monitor.analysis.pipeline import FaceResult, FrameResult

_MATCH, _UNBOOKED, _UNSURE = (60, 180, 60), (40, 40, 220), (0, 200, 230)  # BGR


def face_text(face: Face) -> tuple[str, tuple[int, int, int]]:
    """(text, BGR colour) for one analysed face: its participant id (green), ``unbooked`` (red) or
    ``?`` (yellow: not identified yet)."""
    if face.verdict is Verdict.MATCH and face.participant:
        return str(face.participant), _MATCH
    if face.verdict is Verdict.UNBOOKED:
        return "unbooked", _UNBOOKED
    return "?", _UNSURE


def face_label(result: FaceResult) -> tuple[str, tuple[int, int, int]]:
    """:func:`face_text` of an analysed face."""
    return face_text(result.face)


def annotate(frame_bgr: np.ndarray, result: FrameResult, title: str = "") -> np.ndarray:
    """A copy of ``frame_bgr`` with every face of ``result`` boxed and labelled (its visibility
    too when not full), and ``title`` in a bar at the top when given."""
    return _draw(frame_bgr, [(fr.face, fr.box_px) for fr in result.faces], title)


def annotate_observation(frame_bgr: np.ndarray, observation: Observation, title: str = "") -> np.ndarray:
    """:func:`annotate` from the observation of the frame (its faces' boxes are fractions of it)."""
    height, width = frame_bgr.shape[:2]
    faces = [
        (face, Box(face.box[0] * width, face.box[1] * height, face.box[2] * width, face.box[3] * height))
        for face in observation.faces
    ]
    return _draw(frame_bgr, faces, title)


def _draw(frame_bgr: np.ndarray, faces: list[tuple[Face, Box]], title: str) -> np.ndarray:
    image = frame_bgr.copy()
    for face, box in faces:
        text, colour = face_text(face)
        x0, y0 = round(box.x), round(box.y)
        x1, y1 = round(box.x + box.w), round(box.y + box.h)
        cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
        extra = "" if face.visibility is Visibility.FULL else f" ({face.visibility.value})"
        label = f"{text}{extra}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 2)
        ty = max(th + 4, y0 - 4)
        tx = min(max(0, x0), image.shape[1] - tw - 2)
        cv2.rectangle(image, (tx, ty - th - 4), (tx + tw + 4, ty + base), colour, -1)
        cv2.putText(image, label, (tx + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    if title:
        cv2.rectangle(image, (0, 0), (image.shape[1], 26), (0, 0, 0), -1)
        cv2.putText(image, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return image


__all__ = ["annotate", "annotate_observation", "face_label", "face_text"]

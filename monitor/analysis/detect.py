"""Face detection with MediaPipe BlazeFace, full-range model (finds small faces; used for counting).

BlazeFace fires for a few frames on cartoon faces; the landmarks stage rejects those (no plausible
mesh), so a :class:`Detection` is only a candidate face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mediapipe as mp
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.runtime import quiet_native_logs


@dataclass(frozen=True, slots=True)
class Detection:
    box: Box  # pixels; may extend past the frame edge
    score: float
    # pixels: right eye, left eye, nose tip, mouth, right ear, left ear
    keypoints: tuple[tuple[float, float], ...]


class FaceDetector:
    def __init__(self, *, min_score: float = 0.5, full_range: bool = True) -> None:
        with quiet_native_logs():
            self._model: Any = mp.solutions.face_detection.FaceDetection(
                model_selection=1 if full_range else 0, min_detection_confidence=min_score
            )
            self._model.process(np.zeros((64, 64, 3), np.uint8))  # the graph logs on its first run

    def detect(self, frame: Frame) -> tuple[Detection, ...]:
        result = self._model.process(frame.rgb)
        found = []
        w, h = frame.width, frame.height
        for det in result.detections or ():  # MediaPipe gives None, not an empty list
            rel = det.location_data.relative_bounding_box
            box = Box(rel.xmin * w, rel.ymin * h, rel.width * w, rel.height * h)
            points = tuple((k.x * w, k.y * h) for k in det.location_data.relative_keypoints)
            found.append(Detection(box=box, score=float(det.score[0]), keypoints=points))
        found.sort(key=lambda d: (d.box.x, d.box.y))
        return tuple(found)

    def close(self) -> None:
        self._model.close()

"""Face mesh (MediaPipe, 478 points with refined eyes/lips) on a crop around each detection.

Theory of operation: each candidate detection is cut out as a square ``crop_scale`` x its size,
padded with black where it passes the frame edge (so a face cut by the edge keeps its geometry),
scaled to at most ``crop_px`` and meshed in static mode. The mesh must land on the detection (IoU of
the mesh's box with the detection's box >= ``min_iou``); when it does not, or the mesh finds no face,
the detection is not a plausible face. That is how detector blips on cartoons are rejected: BlazeFace
fires on them for a few frames, the face mesh does not. Points are returned in frame pixels; those
of a face cut by the edge lie outside ``0..width``/``0..height``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import mediapipe as mp
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame
from monitor.analysis.runtime import quiet_native_logs

# Indices into the 468/478-point mesh used by later stages.
NOSE_TIP = 1
CHIN = 152
FOREHEAD = 10
RIGHT_CHEEK = 234  # image left for a face looking at the camera
LEFT_CHEEK = 454
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_OUTER, LEFT_EYE_INNER = 263, 362
MOUTH_RIGHT, MOUTH_LEFT = 61, 291


@dataclass(frozen=True, slots=True, eq=False)
class Landmarks:
    points: np.ndarray = field(repr=False)  # (478, 3) float32: x, y in frame pixels, z relative depth

    @property
    def count(self) -> int:
        return int(self.points.shape[0])

    @property
    def box(self) -> Box:
        x0, y0 = self.points[:, 0].min(), self.points[:, 1].min()
        x1, y1 = self.points[:, 0].max(), self.points[:, 1].max()
        return Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    def xy(self, index: int) -> tuple[float, float]:
        return float(self.points[index, 0]), float(self.points[index, 1])

    def moved(self, old: Box, new: Box) -> Landmarks:
        """The mesh carried from detection box ``old`` to ``new`` (shifted and scaled, not re-run)."""
        scale = new.w / old.w if old.w > 0 else 1.0
        pts = self.points.copy()
        pts[:, 0] = (pts[:, 0] - old.cx) * scale + new.cx
        pts[:, 1] = (pts[:, 1] - old.cy) * scale + new.cy
        pts[:, 2] *= scale
        return Landmarks(pts)


class LandmarkStage:
    def __init__(
        self, *, crop_scale: float = 1.8, crop_px: int = 256, min_iou: float = 0.3, refine: bool = True
    ) -> None:
        self.crop_scale = crop_scale
        self.crop_px = crop_px
        self.min_iou = min_iou
        with quiet_native_logs():
            self._mesh: Any = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=refine, min_detection_confidence=0.5
            )
            self._mesh.process(np.zeros((64, 64, 3), np.uint8))

    def _crop(self, frame: Frame, box: Box) -> tuple[np.ndarray, float, float, float]:
        """The padded square crop, its top-left in frame pixels and its scale (crop px per frame px)."""
        sq = box.square(self.crop_scale)
        x0, y0 = round(sq.x), round(sq.y)
        side = max(2, round(sq.w))
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(frame.width, x0 + side), min(frame.height, y0 + side)
        crop: np.ndarray
        if (sx0, sy0, sx1, sy1) == (x0, y0, x0 + side, y0 + side):
            crop = frame.rgb[y0 : y0 + side, x0 : x0 + side]  # inside the frame: no padding, no copy
        else:
            crop = np.zeros((side, side, 3), np.uint8)
            if sx1 > sx0 and sy1 > sy0:
                crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame.rgb[sy0:sy1, sx0:sx1]
        scale = 1.0
        if side > self.crop_px:
            scale = self.crop_px / side
            crop = cv2.resize(crop, (self.crop_px, self.crop_px), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(crop), float(x0), float(y0), scale

    def landmarks(self, frame: Frame, box: Box) -> Landmarks | None:
        """The mesh of the face in ``box``, or None when there is no plausible face there."""
        crop, x0, y0, scale = self._crop(frame, box)
        result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        size = crop.shape[0]
        pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float32)
        pts *= size / scale
        pts[:, 0] += x0
        pts[:, 1] += y0
        found = Landmarks(pts)
        if found.box.iou(box) < self.min_iou:
            return None  # the mesh found some other face in the crop
        return found

    def close(self) -> None:
        self._mesh.close()

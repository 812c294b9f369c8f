"""dlib face embeddings: 5-point alignment + ResNet 128-d descriptor (face_recognition_models files).

About 65 ms per face on one core, so the identity stage samples it; everything else runs per frame.
The 5-point predictor is used (the 68-point model's training data is non-commercial).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlib
import face_recognition_models
import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.frame import Frame

_MODELS = Path(face_recognition_models.__file__).parent / "models"
SHAPE_PREDICTOR = _MODELS / "shape_predictor_5_face_landmarks.dat"
RESNET = _MODELS / "dlib_face_recognition_resnet_model_v1.dat"


class Embedder:
    def __init__(self) -> None:
        self._shape: Any = dlib.shape_predictor(str(SHAPE_PREDICTOR))
        self._net: Any = dlib.face_recognition_model_v1(str(RESNET))

    def embed(self, frame: Frame, box: Box) -> np.ndarray:
        """The 128-d descriptor of the face in ``box`` (BlazeFace box, frame pixels)."""
        # BlazeFace boxes run from mid-forehead to chin; dlib's predictor was trained on HOG boxes,
        # which are about the same square. Clip to the frame: dlib needs the rectangle inside it.
        c = box.clipped(frame.width, frame.height)
        rect = dlib.rectangle(int(c.x), int(c.y), int(c.x + c.w), int(c.y + c.h))
        shape = self._shape(frame.rgb, rect)
        return np.asarray(self._net.compute_face_descriptor(frame.rgb, shape), dtype=np.float64)

    def close(self) -> None:
        self._shape = None
        self._net = None

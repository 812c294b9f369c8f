"""Enrolment: reference photos → embeddings, refusing photos that cannot give a reliable one.

Each photo must hold exactly one face (BlazeFace full range, confirmed by a face mesh), large,
frontal, sharp and lit enough, by the same quality gates the live identity check uses. Every
refusal is an :class:`EnrolmentError` that names the file and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from monitor.analysis import lighting, quality, visibility
from monitor.analysis.detect import FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.frame import Frame
from monitor.analysis.gallery import EnrolledPerson, Enrolment
from monitor.analysis.landmarks import NOSE_TIP, LandmarkStage
from monitor.analysis.runtime import limit_threads
from monitor.analysis.settings import AnalysisSettings
from monitor.errors import UserError
from monitor.inputs import check_photo
from policies.events import Visibility

__all__ = ["EnrolledPerson", "Enroller", "Enrolment", "EnrolmentError", "enrol_booking", "enrol_photos"]

#: Reference photos are held to a stricter size than live frames: they are the anchor of every check.
MIN_PHOTO_FACE_PX = 80.0


class EnrolmentError(UserError):
    """A reference photo cannot be enrolled; the message names the file and what is wrong."""


def _load(path: Path) -> np.ndarray:
    if not path.is_file():
        raise EnrolmentError(f"{path.name}: file not found ({path})")
    try:  # bytes and pixels from the header, before the decoder allocates anything
        check_photo(path.name, path)
    except UserError as exc:
        raise EnrolmentError(str(exc)) from None
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise EnrolmentError(f"{path.name}: not a readable image (JPEG, PNG, BMP, WebP or TIFF)")
    return image


class Enroller:
    """Holds the models, so many photos can be enrolled at the cost of one model load."""

    def __init__(self, settings: AnalysisSettings | None = None) -> None:
        limit_threads()
        self.settings = settings or AnalysisSettings()
        self._detector = FaceDetector(min_score=self.settings.min_detection_score)
        self._mesh = LandmarkStage(crop_scale=self.settings.mesh_crop_scale)
        self._embedder = Embedder()

    def embed_photo(self, path: Path) -> np.ndarray:
        return self.embed_image(_load(path), path.name)

    def embed_image(self, image: np.ndarray, name: str) -> np.ndarray:
        """The embedding of the one usable face in a decoded BGR image (``name`` labels errors)."""
        s = self.settings
        frame = Frame(image)
        faces = [(d, lm) for d in self._detector.detect(frame) if (lm := self._mesh.landmarks(frame, d.box))]
        if not faces:
            raise EnrolmentError(f"{name}: no face found")
        if len(faces) > 1:
            raise EnrolmentError(f"{name}: {len(faces)} faces found; a reference photo must show one person")
        det, lm = faces[0]
        vis = visibility.assess(det.box, lm, frame.width, frame.height, s)
        if vis.visibility is not Visibility.FULL:
            raise EnrolmentError(f"{name}: the face is {vis.visibility.value.replace('_', ' ')}")
        size = min(det.box.w, det.box.h)
        if size < MIN_PHOTO_FACE_PX:
            raise EnrolmentError(f"{name}: face too small ({size:.0f} px, need {MIN_PHOTO_FACE_PX:.0f})")
        light = lighting.assess_face(frame.gray, lm.box, lm.xy(NOSE_TIP)[0], s)
        q = quality.assess(frame.gray, det.box, vis.visibility, vis.pose, light.lighting, s)
        if q.problem is not None:
            raise EnrolmentError(f"{name}: {q.problem.replace('lighting', 'face lighting')}")
        return self._embedder.embed(frame, det.box)

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()
        self._embedder.close()


def _enrol(enroller: Enroller, people: Mapping[str, Sequence[Path]]) -> Enrolment:
    return Enrolment(
        tuple(
            EnrolledPerson(pid, tuple(enroller.embed_photo(Path(p)) for p in photos))
            for pid, photos in people.items()
        )
    )


def enrol_photos(people: Mapping[str, Sequence[Path]], settings: AnalysisSettings | None = None) -> Enrolment:
    enroller = Enroller(settings)
    try:
        return _enrol(enroller, people)
    finally:
        enroller.close()


def enrol_booking(
    booking: Any, settings: AnalysisSettings | None = None
) -> tuple[Enrolment, Enrolment | None]:
    """(visitors, prisoner), the prisoner None when the booking has no prisoner reference photo.

    ``booking`` is a ``policies.booking.Booking`` (duck-typed: ``participants[i].id`` and
    ``.reference_photos``, ``prisoner.id`` and ``.reference_photos``).
    """
    enroller = Enroller(settings)
    try:
        visitors = _enrol(enroller, {v.id: v.reference_photos for v in booking.participants})
        prisoner = booking.prisoner
        inmate = None
        if prisoner.reference_photos:
            inmate = _enrol(enroller, {prisoner.id: prisoner.reference_photos})
    finally:
        enroller.close()
    return visitors, inmate

"""Faces for ``bench.accuracy``: load the real stills and clip frames, find each face and its gates,
embed it with the project's own models (cached, since an embedding costs ~0.1 s).

A face is *found* when BlazeFace (full range) detects it and the face mesh confirms it, as the
pipeline counts faces. It is *embeddable* when it passes the live identity gates
(``monitor/analysis/quality.py``: fully visible, >= 60 px, frontal, lit, sharp) and a *reference*
when it also passes enrolment's (``monitor/analysis/enrol.py``: >= 80 px). The gates run exactly as
enrolment runs them; only embeddable faces get an embedding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import ROOT
from bench._accuracy_people import CLIPS, STILLS, Clip, Still
from bench.media import BY_NAME, MediaCache, sha256

CACHE_FILE = "embeddings.json"


def resolve(medium: str, cache: MediaCache) -> Path | None:
    """A fixture path or a cached medium (``name#frame`` names a frame of a clip)."""
    name = medium.split("#")[0]
    if name.startswith("fixtures/"):
        path = ROOT / name
        return path if path.is_file() else None
    return cache.path(name)


def file_digest(medium: str, cache: MediaCache) -> str:
    name = medium.split("#")[0]
    if name in BY_NAME:
        return BY_NAME[name].sha256
    path = resolve(name, cache)
    return sha256(path) if path is not None else "missing"


def rotated(bgr: np.ndarray, degrees: int) -> np.ndarray:
    return np.ascontiguousarray(bgr[::-1, ::-1]) if degrees == 180 else bgr


def still_image(still: Still, cache: MediaCache) -> np.ndarray | None:
    path = resolve(still.medium, cache)
    if path is None:
        return None
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is not None and still.crop is not None:
        x0, y0, x1, y1 = still.crop
        image = np.ascontiguousarray(image[y0:y1, x0:x1])
    return image


def clip_frames(
    path: Path, start: int, stop: int, step: int, rotate: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    from monitor.analysis.media import video_frames

    for index, _t, bgr in video_frames(path, start=start, stop=stop, step=step):
        yield index, rotated(bgr, rotate)


def frame_of(medium: str, cache: MediaCache, rotate: int = 0) -> np.ndarray | None:
    """One frame, ``name#index`` (or a still when there is no ``#``)."""
    path = resolve(medium, cache)
    if path is None:
        return None
    if "#" not in medium:
        return cv2.imread(str(path), cv2.IMREAD_COLOR)
    index = int(medium.split("#")[1])
    return next((bgr for _i, bgr in clip_frames(path, index, index + 1, 1, rotate)), None)


def reference_of(clip: Clip, cache: MediaCache) -> tuple[str, np.ndarray | None]:
    """(origin, BGR) of the picture a clip's person is booked with."""
    if clip.reference_photo is not None:
        return clip.reference_photo, frame_of(clip.reference_photo, cache)
    origin = f"{clip.medium}#{clip.reference_frame}"
    return origin, frame_of(origin, cache, clip.rotate)


@dataclass(frozen=True, slots=True)
class Face:
    box: tuple[float, float, float, float]  # x, y, w, h (BlazeFace, pixels)
    size: float  # shorter side of the box
    problem: str | None  # the live gate that failed, None when embeddable
    reference_ok: bool  # passes enrolment's gates too


@dataclass(frozen=True, slots=True)
class Sample:
    person: str
    origin: str
    kind: str  # "still" or "frame"
    face: Face | None  # None: no face found where one is (the note says why)
    note: str
    reference: bool  # designated a reference and passes enrolment's gates
    embedding: np.ndarray | None

    @property
    def embeddable(self) -> bool:
        return self.embedding is not None


def model_tag() -> str:
    import dlib
    import mediapipe

    from monitor.analysis.settings import AnalysisSettings

    text = f"dlib {dlib.__version__} mediapipe {mediapipe.__version__} {AnalysisSettings()!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FaceSampler:
    """The project's detector, mesh, gates and embedder, with results cached by picture."""

    def __init__(self, cache_path: Path | None) -> None:
        from monitor.analysis.detect import FaceDetector
        from monitor.analysis.embed import Embedder
        from monitor.analysis.enrol import MIN_PHOTO_FACE_PX
        from monitor.analysis.landmarks import LandmarkStage
        from monitor.analysis.settings import AnalysisSettings

        self.settings = AnalysisSettings()
        self.min_reference_px = MIN_PHOTO_FACE_PX
        self._detector = FaceDetector(min_score=self.settings.min_detection_score)
        self._mesh = LandmarkStage(crop_scale=self.settings.mesh_crop_scale)
        self._embedder = Embedder()
        self._path = cache_path
        self._tag = model_tag()
        self._entries: dict[str, Any] = {}
        if cache_path is not None and cache_path.is_file():
            try:
                stored = json.loads(cache_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = {}
            if stored.get("model") == self._tag:
                self._entries = stored.get("entries", {})
        self.hits = self.misses = 0

    def assess(self, bgr: np.ndarray) -> list[tuple[tuple[float, float, float, float], Face | None, Any]]:
        """Every BlazeFace detection: (box, its Face with gates when the mesh confirms it, else
        None, and what embedding needs)."""
        from monitor.analysis import lighting, quality, visibility
        from monitor.analysis.frame import Frame
        from monitor.analysis.landmarks import NOSE_TIP

        s = self.settings
        frame = Frame(bgr)
        found: list[tuple[tuple[float, float, float, float], Face | None, Any]] = []
        for det in self._detector.detect(frame):
            box = (det.box.x, det.box.y, det.box.w, det.box.h)
            lm = self._mesh.landmarks(frame, det.box)
            if lm is None:
                found.append((box, None, None))
                continue
            vis = visibility.assess(det.box, lm, frame.width, frame.height, s)
            light = lighting.assess_face(frame.gray, lm.box, lm.xy(NOSE_TIP)[0], s)
            q = quality.assess(frame.gray, det.box, vis.visibility, vis.pose, light.lighting, s)
            ok_ref = q.problem is None and q.size_px >= self.min_reference_px
            found.append((box, Face(box, q.size_px, q.problem, ok_ref), (frame, det.box)))
        return found

    def faces(self, bgr: np.ndarray) -> list[tuple[Face, Any]]:
        """Every confirmed face with its gates, and what embedding it needs."""
        return [(face, payload) for _box, face, payload in self.assess(bgr) if face is not None]

    def sample(
        self, key: str, load: Any, pick: Any, *, person: str, origin: str, kind: str, reference: bool
    ) -> Sample:
        """The face ``pick`` chooses in the picture ``load()`` gives (cached under ``key``)."""
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            entry = self._measure(load, pick)
            self._entries[key] = entry
        else:
            self.hits += 1
        face = (
            Face(tuple(entry["box"]), entry["size"], entry["problem"], entry["reference_ok"])
            if entry["box"]
            else None
        )
        embedding = np.asarray(entry["embedding"], dtype=np.float64) if entry["embedding"] else None
        return Sample(
            person,
            origin,
            kind,
            face,
            entry["note"],
            reference and bool(face and face.reference_ok),
            embedding,
        )

    def _measure(self, load: Any, pick: Any) -> dict[str, Any]:
        bgr = load()
        empty = {"box": None, "size": 0.0, "problem": None, "reference_ok": False, "embedding": None}
        if bgr is None:
            return {**empty, "note": "picture missing"}
        found = self.faces(bgr)
        chosen, note = pick(found, bgr)
        if chosen is None:
            return {**empty, "note": note}
        face, (frame, box) = chosen
        embedding = None
        if face.problem is None:
            embedding = [round(float(v), 7) for v in self._embedder.embed(frame, box)]
        return {
            "box": [round(v, 2) for v in face.box],
            "size": round(face.size, 1),
            "problem": face.problem,
            "reference_ok": face.reference_ok,
            "embedding": embedding,
            "note": note,
        }

    def save(self) -> None:
        if self._path is None or not self.misses:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"model": self._tag, "entries": self._entries}), encoding="utf-8")
        tmp.replace(self._path)

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()
        self._embedder.close()


def pick_only(found: list[Any], _bgr: np.ndarray) -> tuple[Any, str]:
    if len(found) == 1:
        return found[0], ""
    return None, "no face found" if not found else f"{len(found)} faces found"


def pick_largest(found: list[Any], _bgr: np.ndarray) -> tuple[Any, str]:
    if not found:
        return None, "no face found"
    return max(found, key=lambda f: f[0].size), ""


def pick_in(region: tuple[int, int]) -> Any:
    def pick(found: list[Any], _bgr: np.ndarray) -> tuple[Any, str]:
        inside = [f for f in found if region[0] <= f[0].box[0] + f[0].box[2] / 2 < region[1]]
        if not inside:
            return None, "no face found in its region"
        return max(inside, key=lambda f: f[0].size), ""

    return pick


@dataclass(frozen=True, slots=True)
class Source:
    """A found face in a picture, for the detection grid."""

    person: str
    origin: str
    image: np.ndarray
    box: tuple[float, float, float, float]


def collect(cache: MediaCache, sampler: FaceSampler, quick: bool) -> tuple[list[Sample], list[Source]]:
    """Every still and clip probe as a Sample; the found faces of stills and reference frames as
    detection-grid sources. Quick: every 4th clip probe."""
    samples: list[Sample] = []
    sources: list[Source] = []
    for still in STILLS:
        image = still_image(still, cache)
        digest = file_digest(still.medium, cache)
        pick = pick_in(still.region) if still.region else pick_only
        key = f"{digest}:{still.crop}:{still.region}"
        s = sampler.sample(
            key,
            lambda image=image: image,
            pick,
            person=still.person,
            origin=still.origin,
            kind="still",
            reference=still.reference,
        )
        samples.append(s)
        if image is not None and s.face is not None:
            sources.append(Source(still.person, still.origin, image, s.face.box))
    for clip in CLIPS:
        path = resolve(clip.medium, cache)
        origin, ref_image = reference_of(clip, cache)
        digest = file_digest(origin, cache)
        ref = sampler.sample(
            f"{digest}:{origin}:{clip.rotate}", lambda ref_image=ref_image: ref_image, pick_largest,
            person=clip.person, origin=origin, kind="reference frame", reference=True,
        )  # fmt: skip
        samples.append(ref)
        if ref_image is not None and ref.face is not None:
            sources.append(Source(clip.person, origin, ref_image, ref.face.box))
        if path is None:
            continue
        start, stop, step = clip.probe
        digest = file_digest(clip.medium, cache)
        for index, bgr in clip_frames(path, start, stop, step * (4 if quick else 1), clip.rotate):
            samples.append(
                sampler.sample(
                    f"{digest}:{index}:{clip.rotate}", lambda bgr=bgr: bgr, pick_largest,
                    person=clip.person, origin=f"{clip.medium}#{index}", kind="frame", reference=False,
                )
            )  # fmt: skip
    sampler.save()
    return samples, sources

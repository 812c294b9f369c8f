"""FramePipeline: one source's frames → Observations, through the analysis stages in order.

Theory of operation, per frame: detect (BlazeFace full range) → track (stable ids) → mesh each
detection. A track becomes *confirmed* the first time its detection gets a plausible mesh; a
detection of an unconfirmed track without a mesh is a detector blip (cartoons) and is dropped; a
confirmed track whose mesh is lost while it is still detected is a covered face (partial), and so
is one whose appearance changed at some face points but not others (``occlusion.py``). Each
confirmed face then gets visibility, lighting, and (sampled, at most one per frame) an identity
sample when it passes the quality gates. The Observation lists the confirmed faces with their
track's voted verdict, plus persons without a checkable face (pose, sampled) and whole-frame
lighting. The pipeline holds per-source state (tracker, identity votes), so make one per source,
inside the worker process that uses it, and feed it frames in media-time order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.analysis import identity, lighting, occlusion, quality, visibility
from monitor.analysis.box import Box
from monitor.analysis.detect import Detection, FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.frame import Frame
from monitor.analysis.gallery import Enrolment
from monitor.analysis.landmarks import NOSE_TIP, Landmarks, LandmarkStage
from monitor.analysis.persons import FacelessPersonCounter
from monitor.analysis.runtime import limit_threads
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.track import Tracker
from policies.events import Face, Lighting, Observation, Role, Verdict, Visibility

DEFAULT_SETTINGS = AnalysisSettings()

__all__ = ["AnalysisSettings", "FaceResult", "FramePipeline", "FrameResult"]


@dataclass(frozen=True, slots=True)
class FaceResult:
    """Everything known about one confirmed face in one frame (for evidence images and debugging)."""

    face: Face
    box_px: Box
    score: float  # detector score
    landmarks: int  # mesh points (0: mesh lost, face covered)
    yaw: float | None
    pitch: float | None
    face_mean: float  # luma
    quality_problem: str | None  # why it was not embedded (None: passed the gates)
    embedded: bool  # an identity sample was taken on this frame
    samples: int  # identity samples in the track's vote window

    @property
    def label(self) -> str:
        f = self.face
        who = f.participant if f.verdict is Verdict.MATCH else f.verdict.value
        dist = f" {f.distance:.2f}" if f.distance is not None else ""
        extra = "" if f.visibility.value == "full" else f" {f.visibility.value}"
        light = "" if f.lighting is Lighting.OK else f" {f.lighting.value}"
        return f"#{f.track} {who}{dist}{extra}{light}"


@dataclass(frozen=True, slots=True, eq=False)
class FrameResult:
    observation: Observation
    faces: tuple[FaceResult, ...]
    rejected: tuple[Box, ...]  # detections with no plausible face mesh (not faces)
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> ms on this frame (+ "total")


@dataclass(frozen=True, slots=True)
class _FaceWork:
    """One confirmed face between the per-face stages and the identity stage."""

    state: identity.TrackIdentity
    track: int
    detection: Detection
    landmarks: int
    visibility: visibility.VisibilityResult
    lighting: lighting.LightingResult
    quality: quality.Quality

    def result(self, width: int, height: int, embedded: bool) -> FaceResult:
        d = self.state.decision  # read after this frame's identity sample, if any
        pose = self.visibility.pose
        face = Face(
            track=self.track,
            verdict=d.verdict,
            participant=d.participant,
            distance=None if d.distance is None else round(d.distance, 4),
            visibility=self.visibility.visibility,
            lighting=self.lighting.lighting,
            box=self.detection.box.normalised(width, height),
        )
        return FaceResult(
            face=face,
            box_px=self.detection.box,
            score=self.detection.score,
            landmarks=self.landmarks,
            yaw=pose.yaw if pose else None,
            pitch=pose.pitch if pose else None,
            face_mean=self.lighting.face_mean,
            quality_problem=self.quality.problem,
            embedded=embedded,
            samples=d.samples,
        )


class FramePipeline:
    def __init__(
        self,
        enrolment: Enrolment,
        *,
        source: str,
        role: Role = Role.VISITOR,
        settings: AnalysisSettings = DEFAULT_SETTINGS,
        threads: int = 1,
        stage_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """``stage_clock`` times the stages for ``FrameResult.timings_ms``: wall time by default;
        benchmarks pass ``time.process_time`` (CPU time, which other busy processes do not inflate)."""
        limit_threads(threads)
        self._clock = stage_clock
        self.source = source
        self.role = role
        self.settings = settings
        self._detector = FaceDetector(min_score=settings.min_detection_score)
        self._tracker = Tracker(min_iou=settings.track_min_iou, max_missed_s=settings.track_max_missed_s)
        self._mesh = LandmarkStage(crop_scale=settings.mesh_crop_scale, refine=settings.refine_landmarks)
        self._last_mesh: dict[int, tuple[float, Box, Landmarks]] = {}  # track -> (t, box, mesh)
        self._persons = FacelessPersonCounter(period_s=settings.person_check_period_s)
        self._identities = identity.IdentityBook(enrolment, settings)
        self._embedder: Embedder | None = Embedder() if self._identities.enabled else None
        self._confirmed: set[int] = set()
        self._covers = occlusion.CoverWatch(
            max_deviation=settings.covered_deviation, min_regions=settings.covered_points
        )
        self._covered: dict[int, bool] = {}  # track -> covered on its last fresh mesh
        self._closed = False

    def process(self, frame_bgr: np.ndarray, t: float) -> FrameResult:
        if self._closed:
            raise RuntimeError(f"analysis pipeline of {self.source} is closed")
        s = self.settings
        frame = Frame(frame_bgr)
        ms: dict[str, float] = {}
        clock = self._clock()

        def lap(stage: str) -> None:
            nonlocal clock
            now = self._clock()
            ms[stage] = ms.get(stage, 0.0) + (now - clock) * 1000.0
            clock = now

        detections = self._detector.detect(frame)
        lap("detect")
        tracked = self._tracker.update(detections, t)
        live = self._tracker.live_ids
        self._confirmed &= set(live)
        for tid in set(self._last_mesh) - set(live):
            del self._last_mesh[tid]
        self._identities.forget_except(live)
        lap("track")
        meshes = [self._landmarks(frame, td.track, td.detection.box, t) for td in tracked]
        lap("landmarks")
        self._covers.forget_except(live)
        self._covered = {tid: c for tid, c in self._covered.items() if tid in live}

        rejected: list[Box] = []
        pending: list[_FaceWork] = []
        for td, (lm, fresh) in zip(tracked, meshes, strict=True):
            if lm is not None:
                self._confirmed.add(td.track)
            elif td.track not in self._confirmed:
                rejected.append(td.detection.box)
                continue
            vis = visibility.assess(td.detection.box, lm, frame.width, frame.height, s, occluded=lm is None)
            lap("visibility")
            face_box = lm.box if lm is not None else td.detection.box
            split = lm.xy(NOSE_TIP)[0] if lm is not None else None
            light = lighting.assess_face(frame.gray, face_box, split, s)
            lap("lighting")
            vis = self._cover_check(frame, td.track, lm if fresh else None, vis, light.lighting)
            lap("covered")
            state = self._identities.state(td.track)
            due = self._identities.enabled and state.overdue(t, s) is not None
            q = quality.assess(
                frame.gray, td.detection.box, vis.visibility, vis.pose, light.lighting, s, check_sharpness=due
            )
            lap("quality")
            pending.append(_FaceWork(state, td.track, td.detection, lm.count if lm else 0, vis, light, q))

        embedded: int | None = None
        if self._embedder is not None:
            eligible = tuple(w.track for w in pending if w.quality.problem is None)
            embedded = self._identities.pick_due(t, eligible)
            if embedded is not None:
                box = next(w.detection.box for w in pending if w.track == embedded)
                self._identities.add_embedding(embedded, self._embedder.embed(frame, box), t)
        lap("identity")

        faces = [w.result(frame.width, frame.height, w.track == embedded) for w in pending]
        faceless = self._persons.count(frame, t, tuple(f.box_px for f in faces))
        lap("persons")
        frame_light = lighting.assess_frame(frame.gray, s) if not faces else Lighting.OK
        lap("lighting")
        observation = Observation(
            t=t,
            source=self.source,
            role=self.role,
            faces=tuple(f.face for f in faces),
            persons_without_face=faceless,
            lighting=frame_light,
        )
        ms["total"] = sum(ms.values())
        return FrameResult(observation, tuple(faces), tuple(rejected), ms)

    def _landmarks(self, frame: Frame, track: int, box: Box, t: float) -> tuple[Landmarks | None, bool]:
        """(mesh, fresh): a fresh mesh every ``mesh_period_s`` per confirmed track (always for
        unconfirmed ones); in between the last mesh carried along with the detection box."""
        last = self._last_mesh.get(track)
        if last is not None and 0 <= t - last[0] < self.settings.mesh_period_s:
            return last[2].moved(last[1], box), False
        lm = self._mesh.landmarks(frame, box)
        if lm is None:
            self._last_mesh.pop(track, None)
        else:
            self._last_mesh[track] = (t, box, lm)
        return lm, True

    def _cover_check(
        self,
        frame: Frame,
        track: int,
        fresh: Landmarks | None,
        vis: visibility.VisibilityResult,
        light: Lighting,
    ) -> visibility.VisibilityResult:
        """Mark a fully visible face PARTIAL when part of it is covered (``occlusion.py``), judged
        on fresh meshes only and held in between; not judged while the lighting is poor."""
        if vis.visibility is not Visibility.FULL or light is not Lighting.OK:
            self._covered.pop(track, None)
            return vis
        if fresh is not None and (sig := occlusion.signature(frame.bgr, fresh)) is not None:
            frontal = vis.pose is not None and abs(vis.pose.yaw) <= self.settings.max_embed_yaw
            self._covered[track] = self._covers.update(track, sig, clean_view=frontal)
        if self._covered.get(track, False):
            return replace(vis, visibility=Visibility.PARTIAL)
        return vis

    def close(self) -> None:
        """Free the models (idempotent). The pipeline cannot process frames afterwards."""
        if self._closed:
            return
        self._closed = True
        self._detector.close()
        self._mesh.close()
        self._persons.close()
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

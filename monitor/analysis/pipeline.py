"""FramePipeline: one source's frames → Observations, through the analysis stages in order.

Theory of operation, per frame: detect (BlazeFace full range) → track (stable ids) → mesh each
detection. A track becomes *confirmed* the first time its detection gets a plausible mesh; a
detection of an unconfirmed track without a mesh is a detector blip (cartoons) and is dropped; a
confirmed track whose mesh is lost while it is still detected is a partial face. A face is *covered*
when a hand hides its mouth, nose or an eye (``hands.py``: MediaPipe Hands, checked only when a face
is new or its look changed) or its appearance changed at some face points but not others
(``occlusion.py``: a mask, a scarf, an object). Each confirmed face then gets visibility, lighting,
and (sampled, at most one per frame) an identity sample when it passes the quality gates (a covered
face never does; a sample taken with a hand at the face may match but never votes "nobody booked").
The Observation lists the confirmed faces with their track's voted verdict, plus persons without a
checkable face (pose, sampled), whole-frame lighting, and what is behind the people (``scene.py``: a
moving camera, a busy background). The pipeline holds per-source state (tracker, identity votes), so
make one per source, inside the worker process that uses it, and feed it frames in media-time order.

Steadiness. A frame is *steady* when nothing in it needs watching closely: at least one face,
every face followed without a break from the previous frame (same tracks, overlapping boxes),
matched to a different booked person with an identity that agrees with its latest sample, fully
visible and well lit, no detector blips and nobody without a face. While frames are steady the
costly samplers slow down (pose every ``person_check_period_steady_s``, a confident identity
every ``recheck_period_confident_s``, face meshes every ``mesh_period_steady_s``) and
``FrameResult.steady`` tells the caller it may analyse fewer frames (replay does: see
``monitor/replay/replay.py``). Any break makes the frame unsteady and marks the track's identity
disturbed, so the samplers speed up again at once. A steady frame whose picture changed since the
previous analysed frame (the cadence's block and brightness test on a grey thumbnail, or the
caller saying so: ``process(..., changed=True)``) gets the person check at once: a body walking in
behind a steady face changes the picture before any face stage notices.

Why a confident identity may wait so long. A track is only *continuous* while its box overlaps its
previous one on consecutive analysed frames, but a box can overlap while the person in it
changes (one person leans in where the other was within one analysed interval; the cadence's
change gate brings that frame in at once, but an analysed frame alone proves nothing). So each
track also keeps its face's *look* (the 16 x 16 grey thumbnail the mesh gate uses) from its
latest identity sample; a look that drifted more than ``identity_look_change`` from it disturbs
the identity, which is then sampled again on the next frame that passes the quality gates. The
same man over a 60 s call drifts by at most 10; two different faces differ by 27-56.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from monitor.analysis import identity, lighting, occlusion, quality, visibility
from monitor.analysis.box import Box
from monitor.analysis.cadence import BRIGHTNESS_THRESHOLD, CHANGE_THRESHOLD, THUMB_STEP, block_change
from monitor.analysis.detect import Detection, FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.frame import Frame
from monitor.analysis.gallery import Enrolment
from monitor.analysis.hands import HandFinder, HandWatch
from monitor.analysis.landmarks import NOSE_TIP, Landmarks, LandmarkStage
from monitor.analysis.persons import FacelessPersonCounter
from monitor.analysis.runtime import limit_threads
from monitor.analysis.scene import SceneWatch
from monitor.analysis.settings import AnalysisSettings
from monitor.analysis.track import TrackedDetection, Tracker
from monitor.analysis.track import look_change as _look_change
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
    steady: bool = False  # nothing changing or uncertain (see the module doc): fewer frames will do
    # the costly model runs on this frame: "mesh" (fresh face meshes), "identity" (embeddings),
    # "pose" (person checks), "hands" (hand checks); what benchmarks multiply by their unit costs
    work: dict[str, int] = field(default_factory=dict)
    # a face in it awaits the identity samples its verdict waits on (a new face's first votes, or
    # one that may be a clear stranger: ``identity.TrackIdentity.voting``): its next frames matter
    voting: bool = False


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
            samples=d.samples,
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


def _face_look(frame: Frame, box: Box) -> np.ndarray:
    """The face's detection box in grey, 16 x 16 (a few tens of microseconds)."""
    rows, cols = box.pixel_slices(frame.width, frame.height)
    face = frame.gray[rows, cols]
    if face.shape[0] < 2 or face.shape[1] < 2:
        return np.zeros((16, 16), np.int16)
    return cv2.resize(face, (16, 16), interpolation=cv2.INTER_AREA).astype(np.int16)


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
        self._tracker = Tracker(
            min_iou=settings.track_min_iou,
            max_missed_s=settings.track_max_missed_s,
            position_only_s=settings.track_position_only_s,
            max_look_change=settings.identity_look_change,
        )
        self._mesh = LandmarkStage(crop_scale=settings.mesh_crop_scale, refine=settings.refine_landmarks)
        self._last_mesh: dict[int, tuple[float, Box, Landmarks]] = {}  # track -> (t, box, mesh)
        self._mesh_look: dict[int, np.ndarray] = {}  # track -> face thumbnail when last meshed
        self._sample_look: dict[int, np.ndarray] = {}  # track -> face thumbnail at its last identity sample
        self._persons = FacelessPersonCounter(period_s=settings.person_check_period_s)
        self._identities = identity.IdentityBook(enrolment, settings)
        self._embedder: Embedder | None = Embedder() if self._identities.enabled else None
        self._confirmed: set[int] = set()
        self._covers = occlusion.CoverWatch(
            max_deviation=settings.covered_deviation, min_regions=settings.covered_points
        )
        self._covered: dict[int, bool] = {}  # track -> covered on its last fresh mesh
        self._hands = HandWatch(
            HandFinder(min_score=settings.hand_min_score),
            min_share=settings.hand_cover_share,
            widen=settings.hand_widen,
            look_change=settings.hand_look_change,
            recheck_s=settings.hand_recheck_s,
            covered_recheck_s=settings.hand_covered_recheck_s,
            min_period_s=settings.hand_min_period_s,
        )
        self._scene = SceneWatch(settings)
        self._previous_faces: tuple[int, ...] = ()  # face tracks in the previous frame's observation
        self._steady = False  # the previous frame was steady
        self._thumb: np.ndarray | None = None  # the previous frame's grey thumbnail
        self._closed = False

    def process(self, image: np.ndarray | Frame, t: float, *, changed: bool = False) -> FrameResult:
        """Analyse one frame: a BGR array, or a :class:`Frame` (``Frame.from_rgb`` when the
        source decodes to RGB, which saves the conversion MediaPipe and dlib would need).
        ``changed``: the caller saw the picture change since the last analysed frame (replay's
        change gate); the person check then runs on this frame even while steady, since what
        changed may be someone whose face cannot be seen (the pipeline also looks for itself)."""
        if self._closed:
            raise RuntimeError(f"analysis pipeline of {self.source} is closed")
        s = self.settings
        frame = image if isinstance(image, Frame) else Frame(image)
        ms: dict[str, float] = {}
        clock = self._clock()

        def lap(stage: str) -> None:
            nonlocal clock
            now = self._clock()
            ms[stage] = ms.get(stage, 0.0) + (now - clock) * 1000.0
            clock = now

        detections = self._detector.detect(frame)
        lap("detect")
        det_looks = tuple(_face_look(frame, d.box) for d in detections)
        tracked = self._tracker.update(detections, t, det_looks)
        live = self._tracker.live_ids
        self._confirmed &= set(live)
        for tid in set(self._last_mesh) - set(live):
            del self._last_mesh[tid]
            self._mesh_look.pop(tid, None)
        for tid in set(self._sample_look) - set(live):
            del self._sample_look[tid]
        self._identities.forget_except(live)
        lap("track")
        looks = {td.track: look for td, look in zip(tracked, det_looks, strict=True)}
        meshes = [
            self._landmarks(
                frame,
                td.track,
                td.detection.box,
                looks[td.track],
                t,
                steady=self._steady and td.continuous and self._covers.ready(td.track),
            )
            for td in tracked
        ]
        lap("landmarks")
        self._covers.forget_except(live)
        self._covered = {tid: c for tid, c in self._covered.items() if tid in live}
        self._hands.forget_except(live)
        meshed = {
            td.track: (td.detection.box, lm, looks[td.track])
            for td, (lm, _) in zip(tracked, meshes, strict=True)
            if lm is not None
        }
        hand_checked = any(self._hands.due(tid, t, look) for tid, (_, _, look) in meshed.items())
        if hand_checked:
            self._hands.check(frame, t, meshed)
        lap("hands")

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
            light = lighting.assess_face(frame.gray, face_box, split, s, lm)
            lap("lighting")
            vis = self._cover_check(frame, td.track, lm if fresh else None, vis, light.lighting)
            if vis.visibility is Visibility.FULL and self._hands.covered(td.track):
                vis = replace(vis, visibility=Visibility.COVERED)
            lap("covered")
            broken = not td.continuous or vis.visibility is not Visibility.FULL
            if broken or self._look_drifted(td.track, looks):
                self._identities.disturb(td.track)
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
                # with a hand at the face (not over it, or not yet), a sample may still match but
                # may not say "nobody booked": a half-hidden face drifts away from its reference
                self._identities.add_embedding(
                    embedded,
                    self._embedder.embed(frame, box),
                    t,
                    may_be_far=not self._hands.hand_near(embedded),
                )
                self._sample_look[embedded] = looks[embedded]
        lap("identity")

        faces = [w.result(frame.width, frame.height, w.track == embedded) for w in pending]
        calm = not rejected and self._calm(tracked, faces)
        self._previous_faces = tuple(f.face.track for f in faces)
        changed = self._picture_changed(frame) or changed
        period = (0.0 if changed else s.person_check_period_steady_s) if calm else None
        checks = self._persons.checks
        faceless = self._persons.count(frame, t, tuple(f.box_px for f in faces), period)
        lap("persons")
        frame_light = lighting.assess_frame(frame.gray, s) if not faces else Lighting.OK
        lap("lighting")
        scene = self._scene.update(frame, t, tuple(f.box_px for f in faces))
        lap("scene")
        observation = Observation(
            t=t,
            source=self.source,
            role=self.role,
            faces=tuple(f.face for f in faces),
            persons_without_face=faceless,
            lighting=frame_light,
            camera_moving=scene.camera_moving,
            busy_background=scene.busy_background,
        )
        ms["total"] = sum(ms.values())
        self._steady = calm and faceless == 0
        work = {
            "mesh": sum(fresh for _, fresh in meshes),
            "identity": int(embedded is not None),
            "pose": self._persons.checks - checks,
            "hands": int(hand_checked),
        }
        voting = any(self._identities.voting(w.track) for w in pending)
        return FrameResult(
            observation, tuple(faces), tuple(rejected), ms, steady=self._steady, work=work, voting=voting
        )

    def _calm(self, tracked: tuple[TrackedDetection, ...], faces: list[FaceResult]) -> bool:
        """Steady but for the faceless-person check (module doc): every face followed, booked,
        agreed on, fully visible and well lit, each a different person."""
        if not faces or len(tracked) != len(faces):
            return False
        if tuple(f.face.track for f in faces) != self._previous_faces:
            return False
        if not all(td.continuous for td in tracked):
            return False
        people = set()
        for f in faces:
            face = f.face
            if face.visibility is not Visibility.FULL or face.lighting is not Lighting.OK:
                return False
            if self._identities.enabled:
                if not self._identities.settled(face.track) or face.participant in people:
                    return False
                people.add(face.participant)
        return True

    def _picture_changed(self, frame: Frame) -> bool:
        """Whether the picture changed since the previous analysed frame, by the cadence's change
        gate test on a grey thumbnail (``monitor/analysis/cadence.py``)."""
        thumb = np.ascontiguousarray(frame.gray[::THUMB_STEP, ::THUMB_STEP])
        before, self._thumb = self._thumb, thumb
        if before is None or before.shape != thumb.shape:
            return False
        shift = abs(float(thumb.mean()) - float(before.mean()))
        return block_change(thumb, before) > CHANGE_THRESHOLD or shift > BRIGHTNESS_THRESHOLD

    def _look_drifted(self, track: int, looks: dict[int, np.ndarray]) -> bool:
        """Whether the face no longer looks like it did at the track's latest identity sample
        (module doc: a confident identity is only trusted for long while the look holds)."""
        before = self._sample_look.get(track)
        return before is not None and _look_change(before, looks[track]) > self.settings.identity_look_change

    def _landmarks(
        self, frame: Frame, track: int, box: Box, look: np.ndarray, t: float, *, steady: bool
    ) -> tuple[Landmarks | None, bool]:
        """(mesh, fresh): a fresh mesh every ``mesh_period_s`` per confirmed track (always for
        unconfirmed ones); in between the last mesh carried along with the detection box. While
        steady (and the cover check has its baseline) the period is ``mesh_period_steady_s``,
        unless the face looks different from when it was last meshed (``mesh_look_change``: a
        hand or an object over it), so a cover is still judged on the frame it appears."""
        last = self._last_mesh.get(track)
        if last is not None and 0 <= t - last[0] < self.settings.mesh_period_s:
            return last[2].moved(last[1], box), False
        if steady and last is not None and 0 <= t - last[0] < self.settings.mesh_period_steady_s:
            before = self._mesh_look.get(track)
            if before is not None and _look_change(before, look) <= self.settings.mesh_look_change:
                return last[2].moved(last[1], box), False
        lm = self._mesh.landmarks(frame, box)
        if lm is None:
            self._last_mesh.pop(track, None)
            self._mesh_look.pop(track, None)
        else:
            self._last_mesh[track] = (t, box, lm)
            self._mesh_look[track] = look
        return lm, True

    def _cover_check(
        self,
        frame: Frame,
        track: int,
        fresh: Landmarks | None,
        vis: visibility.VisibilityResult,
        light: Lighting,
    ) -> visibility.VisibilityResult:
        """Mark a fully visible face COVERED when part of it is covered (``occlusion.py``), judged
        on fresh meshes only and held in between; not judged while the lighting is poor."""
        if vis.visibility is not Visibility.FULL or light is not Lighting.OK:
            self._covered.pop(track, None)
            return vis
        if fresh is not None and (sig := occlusion.signature(frame, fresh)) is not None:
            frontal = vis.pose is not None and abs(vis.pose.yaw) <= self.settings.max_embed_yaw
            self._covered[track] = self._covers.update(track, sig, clean_view=frontal)
        if self._covered.get(track, False):
            return replace(vis, visibility=Visibility.COVERED)
        return vis

    def close(self) -> None:
        """Free the models (idempotent). The pipeline cannot process frames afterwards."""
        if self._closed:
            return
        self._closed = True
        self._detector.close()
        self._mesh.close()
        self._persons.close()
        self._hands.finder.close()
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None

"""Behind the people: a moving camera and a busy background, on the fixture clips (real footage)."""

from __future__ import annotations

from pathlib import Path

from monitor.analysis.detect import FaceDetector
from monitor.analysis.frame import Frame
from monitor.analysis.landmarks import LandmarkStage
from monitor.analysis.media import video_frames
from monitor.analysis.scene import SceneResult, SceneWatch
from monitor.analysis.settings import AnalysisSettings

CLIPS = Path(__file__).resolve().parents[3] / "fixtures" / "clips"
S = AnalysisSettings()


def watch(
    detector: FaceDetector, mesh: LandmarkStage, name: str, step: int = 5
) -> list[tuple[float, SceneResult]]:
    """The scene checks over a clip at 6 (step 5) or 2 (step 15) analysed frames a second, with
    the faces the pipeline would confirm (a detection with a plausible mesh)."""
    scene = SceneWatch(S)
    out = []
    for _i, t, bgr in video_frames(CLIPS / f"{name}.webm", step=step):
        f = Frame(bgr)
        faces = tuple(d.box for d in detector.detect(f) if mesh.landmarks(f, d.box) is not None)
        out.append((t, scene.update(f, t, faces)))
    return out


def test_a_camera_held_in_a_moving_hand_is_seen_and_a_resting_one_is_not(
    detector: FaceDetector, mesh: LandmarkStage
) -> None:
    """handheld.webm: a man at a resting webcam; from 4 s to 12 s the view follows a real handheld
    phone's measured path (amplified), then rests again."""
    for step in (5, 15):
        results = watch(detector, mesh, "handheld", step)
        assert not any(r.camera_moving for t, r in results if t < 4.0), step
        moving = [r.camera_moving for t, r in results if 6.5 <= t <= 12.0]
        assert sum(moving) >= 0.9 * len(moving), (step, moving)
        assert not any(r.camera_moving for t, r in results if t >= 14.5), step
        assert not any(r.busy_background for _, r in results)


def test_a_phone_held_still_and_people_moving_are_not_a_moving_camera(
    detector: FaceDetector, mesh: LandmarkStage
) -> None:
    """clean.webm is itself a phone held still (its source sways 1-2 % of the frame a second);
    in unbooked_walk_in.webm a second person slides in and out in front of the camera."""
    for name in ("clean", "unbooked_walk_in"):
        results = watch(detector, mesh, name)
        assert not any(r.camera_moving for _, r in results), name
        speeds = [r.speed for _, r in results if r.speed is not None]
        assert speeds and max(speeds) < S.camera_moving_speed, name


def test_a_cluttered_room_is_a_busy_background_and_a_door_is_not(
    detector: FaceDetector, mesh: LandmarkStage
) -> None:
    busy = watch(detector, mesh, "busy_background")
    assert all(r.busy_background for t, r in busy if t >= 0.5)
    assert min(r.clutter for _, r in busy if r.clutter is not None) > S.busy_background_edges
    plain = watch(detector, mesh, "clean")
    assert not any(r.busy_background for _, r in plain)
    assert max(r.clutter for _, r in plain if r.clutter is not None) < S.plain_background_edges


def test_with_nobody_in_view_there_is_nothing_behind_anyone(
    detector: FaceDetector, mesh: LandmarkStage
) -> None:
    scene = SceneWatch(S)
    frames = list(video_frames(CLIPS / "busy_background.webm", step=5, stop=60))
    results = []
    for _i, t, bgr in frames[:-1]:
        f = Frame(bgr)
        results.append(scene.update(f, t, tuple(d.box for d in detector.detect(f))))
    assert results[0].clutter is None and all(r.busy_background for r in results[1:])  # two to judge
    assert scene.update(Frame(frames[-1][2]), frames[-1][1], ()) == SceneResult(False, False, None, None)

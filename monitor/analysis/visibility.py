"""Is the whole face checkable? Partial (cut by the frame edge or covered) or turned away.

Partial: less than ``partial_inside_fraction`` of the detection box is inside the frame, or more
than ``partial_landmarks_outside`` of the mesh points fall outside it. A face whose track was meshed
before but now has a detection without a plausible mesh is covered (occluded): also partial. (The
mesh usually survives a cover, predicting the hidden part: ``hands.py`` and ``occlusion.py`` catch
those, and the pipeline reports them COVERED.)
Turned away: yaw and pitch from the mesh, each in -1..1 with 0 facing the camera. Yaw is where the
nose tip sits between the two cheek contour points; pitch is where it sits between forehead and chin
(about 0.1 for a level frontal face, so it is re-centred).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from monitor.analysis.box import Box
from monitor.analysis.landmarks import CHIN, FOREHEAD, LEFT_CHEEK, NOSE_TIP, RIGHT_CHEEK, Landmarks
from monitor.analysis.settings import AnalysisSettings
from policies.events import Visibility

_PITCH_LEVEL = 0.08  # nose position of a level face on the forehead..chin axis, measured


@dataclass(frozen=True, slots=True)
class Pose:
    yaw: float  # -1..1, 0 frontal; the sign says which way
    pitch: float


@dataclass(frozen=True, slots=True)
class VisibilityResult:
    visibility: Visibility
    inside_fraction: float  # of the detection box
    landmarks_outside: float  # share of mesh points outside the frame (1.0 when no mesh)
    pose: Pose | None


def head_pose(lm: Landmarks) -> Pose:
    nx, ny = lm.xy(NOSE_TIP)
    rx, _ = lm.xy(RIGHT_CHEEK)
    lx, _ = lm.xy(LEFT_CHEEK)
    _, fy = lm.xy(FOREHEAD)
    _, cy = lm.xy(CHIN)
    width, height = lx - rx, cy - fy
    yaw = 2.0 * (nx - rx) / width - 1.0 if abs(width) > 1e-6 else 1.0
    pitch = 2.0 * (ny - fy) / height - 1.0 - _PITCH_LEVEL if abs(height) > 1e-6 else 1.0
    return Pose(float(np.clip(yaw, -1, 1)), float(np.clip(pitch, -1, 1)))


def assess(
    box: Box,
    lm: Landmarks | None,
    width: int,
    height: int,
    settings: AnalysisSettings,
    *,
    occluded: bool = False,
) -> VisibilityResult:
    inside = box.inside_fraction(width, height)
    if lm is None:
        return VisibilityResult(Visibility.PARTIAL, inside, 1.0, None)
    p = lm.points
    outside = float(np.mean((p[:, 0] < 0) | (p[:, 0] >= width) | (p[:, 1] < 0) | (p[:, 1] >= height)))
    pose = head_pose(lm)
    if occluded or inside < settings.partial_inside_fraction or outside > settings.partial_landmarks_outside:
        vis = Visibility.PARTIAL
    elif abs(pose.yaw) > settings.turned_away_yaw or abs(pose.pitch) > settings.turned_away_pitch:
        vis = Visibility.TURNED_AWAY
    else:
        vis = Visibility.FULL
    return VisibilityResult(vis, inside, outside, pose)

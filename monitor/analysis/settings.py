"""AnalysisSettings: every analysis threshold in one frozen, picklable value, with measured defaults.

Identity thresholds come from ``python -m monitor.analysis.calibrate`` on the real media in
``../shared/media``: genuine pairs measured 0.32-0.49, the closest impostor pair 0.50, and other
sources report same-ethnicity impostors at 0.52-0.60. ``match_distance`` 0.48 keeps every measured
impostor out (per-sample false non-match 6%, absorbed by voting), so a match
needs a small distance *and* a margin over the next booked person *and* agreeing votes, and a face
is only called unbooked when several samples are far from everyone booked.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    # detection / landmarks
    min_detection_score: float = 0.5
    mesh_crop_scale: float = 1.8
    mesh_period_s: float = 0.2  # re-mesh a confirmed face this often; carry its mesh in between
    mesh_period_steady_s: float = 3.0  # ... and this often while the frame is steady (pipeline doc),
    mesh_look_change: float = 15.0  # unless the face's 16x16 grey look changed more than this since
    # it was last meshed (grey levels, overall shift removed; measured: a talking head 3-9 over
    # 0.5 s, a cover over the lower face 35). Between fresh meshes the last one is carried with the
    # detection box, which keeps the frame-edge rule exact; a turn or a cover changes the look, so
    # the steady period is only a backstop for changes too slow for the look gate
    refine_landmarks: bool = True  # 478 points (eyes and lips refined) instead of 468
    # tracking
    track_min_iou: float = 0.2
    # a face unseen this long (media time) is forgotten: long enough that a face analysed sparsely
    # (a starved live worker, a 1 fps calm replay) or missed for a moment keeps its track and its
    # identity votes (a new track pays 200-300 ms of identity samples per frame); a face re-found
    # after a longer gap than this must still look as it did when last seen (``track.py``)
    track_max_missed_s: float = 2.0
    track_position_only_s: float = 0.7  # ... a shorter gap is bridged by position alone
    # visibility
    partial_inside_fraction: float = 0.92  # less of the face box inside the frame: partial
    partial_landmarks_outside: float = 0.04  # more mesh points outside the frame: partial
    turned_away_yaw: float = 0.7  # |yaw| in -1..1 (0 frontal) beyond this: turned away
    turned_away_pitch: float = 0.6
    covered_deviation: float = 40.0  # Lab change at a face point, beyond the whole face's shift
    covered_points: int = 2  # this many of the 10 points changed: the face is covered (partial)
    # hands in front of the face (``hands.py``): covered when a hand hides this share of the mouth,
    # the nose or an eye; checked on a track's first frame, then (at most every
    # ``hand_min_period_s``) when its look changed by more than ``hand_look_change`` since its last
    # check, or every ``hand_recheck_s`` while a hand is near it (``hand_covered_recheck_s`` over it)
    hand_min_score: float = 0.3
    hand_cover_share: float = 0.2
    hand_widen: float = 0.15
    hand_look_change: float = 15.0
    hand_recheck_s: float = 1.0
    hand_covered_recheck_s: float = 0.3
    hand_min_period_s: float = 0.5
    person_check_period_s: float = 1.0  # how often to look for bodies without a face (pose)
    # ... and how often while the frame is steady (every face booked, fully visible and well lit,
    # nothing changing): the booked person's own body is then what pose finds, so the check can
    # only matter for someone behind them; pose is the costliest per-frame stage (~20 ms). Someone
    # stepping in changes the picture, and a steady frame whose picture changed since the previous
    # analysed one is always checked (pipeline doc), so this is the backstop for slower changes
    person_check_period_steady_s: float = 30.0
    person_min_area: float = 0.04  # share of the frame a faceless person blob must cover
    # lighting (8-bit luma)
    dark_mean: float = 55.0
    overexposed_mean: float = 215.0
    overexposed_clipped: float = 0.25  # share of face pixels at >= 250
    uneven_ratio: float = 0.45  # darker half / brighter half below this: uneven
    # backlit: the surround is bright and this many times brighter than the face. A ratio with a
    # bright-surround floor, not a difference: darker skin in a bright room (obama3.jpg: face 97,
    # room 202) is not backlit, a face against a window (~60 against ~230) is.
    backlit_ratio: float = 2.5
    backlit_background: float = 160.0
    # identity quality gates: a face is only embedded when all pass
    min_face_px: float = 60.0  # shorter side of the face box
    max_embed_yaw: float = 0.5  # obama2.jpg, a three-quarter portrait, is -0.43
    min_sharpness: float = 20.0  # variance of the Laplacian on the face resized to 128 px
    # identity decisions (dlib ResNet euclidean distance)
    match_distance: float = 0.48
    match_margin: float = 0.06  # over the second-best booked person
    unbooked_distance: float = 0.58
    votes: int = 3  # agreeing samples needed for MATCH or UNBOOKED
    # ... except a clear stranger: this many latest samples, each further than this from every
    # booked person, make the face UNBOOKED (``identity.py``'s theory: booked faces measured at most
    # 0.50 on the fixtures' footage, 0.61 covered by a hand; real strangers 0.74-0.91)
    clear_unbooked_distance: float = 0.70
    clear_unbooked_votes: int = 2
    vote_window: int = 5  # the last N samples of a track are considered
    sample_period_new_s: float = 0.15  # a new track's first ``votes`` samples, this often
    sample_period_uncertain_s: float = 0.25  # embed a PENDING track (or one that disagrees) this often
    recheck_period_s: float = 3.0  # re-embed a decided track this often
    # ... and a *confident* match (its latest sample voted for the same person, and the track has
    # been in view, fully visible and followed without a break since that sample)
    # this often; a break (a missed frame, a jump, a partial or turned-away view) makes it due
    # again as soon as the face passes the quality gates
    recheck_period_confident_s: float = 60.0
    # ... as long as the face still looks as it did at that sample: a 16x16 grey look (overall shift
    # removed) that changed by more than this since makes the identity due again at once. Measured:
    # the same man over a 60 s call at most 10 (median 8); different people 27-56 (the group
    # photo's five faces pairwise, the man against the walk-in visitor 37-42)
    identity_look_change: float = 20.0
    # behind the people (``scene.py``): judged over the last ``scene_window_s`` of analysed frames;
    # the camera speed in frame widths per second (on when the window's median passes the first
    # value), the background's edge share (on above the first value, off below the second)
    scene_window_s: float = 3.0
    scene_min_gap_s: float = 0.15  # the camera's speed is measured over at least this much time
    scene_max_gap_s: float = 1.0  # ... and frames further apart than this are not compared
    scene_min_background: float = 0.1  # share of the picture that must be background to judge it
    camera_min_response: float = 0.1  # phase-correlation peak below this: not a measurement
    camera_moving_speed: float = 0.047  # 30 px/s at 640 px wide
    camera_still_speed: float = 0.02  # ... and off when three quarters of the window is below this
    busy_background_edges: float = 0.18  # share of background pixels on a Canny edge (160 px wide)
    plain_background_edges: float = 0.14

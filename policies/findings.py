"""What one Observation shows, before any debouncing: its findings and whether it is clean.

``findings_in`` maps each reason present in a frame to a :class:`Culprit` (the face or frame that
shows it), and ``is_clean`` is the per-frame half of the security check. ``camera_moving`` and
``busy_background`` are findings too, but only for guidance: the security check never looks at
them (and the policy gives them no pause window, see ``PolicyConfig.pause_after``). The session
(policies/session.py) debounces findings over time and decides; this module only looks at one
frame. The participant guidance texts live here too, next to the findings they explain.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.events import Lighting, Observation, Verdict, Visibility
from policies.reasons import Reason

#: A pending face counts as undecided once identity has sampled it this often without deciding
#: (the votes a decision needs): a face not yet sampled, because analysis is busy, is not in doubt.
UNDECIDED_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class Culprit:
    """The face (or frame) that shows a finding, and what exactly is wrong (for guidance)."""

    track: int | None = None
    participant: str | None = None
    kind: str = ""  # a Visibility / Lighting value, "person" (a body without a face), or ""


def findings_in(obs: Observation, booked_on_side: int) -> dict[Reason, Culprit]:
    """Findings this frame shows, in the fixed order of the reason vocabulary."""
    found: dict[Reason, Culprit] = {}
    unbooked = [f for f in obs.faces if f.verdict is Verdict.UNBOOKED]
    if unbooked:
        found[Reason.UNBOOKED_FACE] = Culprit(unbooked[0].track, None, "")
    if len(obs.faces) > booked_on_side:
        found[Reason.TOO_MANY_FACES] = Culprit(None, None, f"{len(obs.faces)} faces, {booked_on_side} booked")
    hidden = [f for f in obs.faces if f.visibility is not Visibility.FULL]
    if hidden:
        face = hidden[0]
        found[Reason.FACE_NOT_VISIBLE] = Culprit(
            face.track, _matched(face.participant, face.verdict), face.visibility
        )
    elif obs.persons_without_face > 0:
        found[Reason.FACE_NOT_VISIBLE] = Culprit(None, None, "person")
    if not obs.faces and obs.persons_without_face == 0:
        found[Reason.NO_FACE] = Culprit()
    badly_lit = [f for f in obs.faces if f.lighting is not Lighting.OK]
    if badly_lit:
        face = badly_lit[0]
        found[Reason.POOR_LIGHTING] = Culprit(
            face.track, _matched(face.participant, face.verdict), face.lighting
        )
    elif not obs.faces and obs.lighting is not Lighting.OK:
        found[Reason.POOR_LIGHTING] = Culprit(None, None, obs.lighting)
    # a face that can be seen whole and was sampled enough, but is neither confirmed nor ruled out (a
    # hidden face is a visibility question first); the culprit names the closest booked person
    undecided = [
        f
        for f in obs.faces
        if f.verdict is Verdict.PENDING and f.visibility is Visibility.FULL and f.samples >= UNDECIDED_SAMPLES
    ]
    if undecided:
        found[Reason.IDENTITY_UNCONFIRMED] = Culprit(undecided[0].track, undecided[0].participant, "")
    if obs.camera_moving:
        found[Reason.CAMERA_MOVING] = Culprit()
    if obs.busy_background:
        found[Reason.BUSY_BACKGROUND] = Culprit()
    return found


def _matched(participant: str | None, verdict: Verdict) -> str | None:
    return participant if verdict is Verdict.MATCH else None


def is_clean(obs: Observation, booked: tuple[str, ...] | None) -> bool:
    """The per-frame security check: >= 1 face, every face a booked person on this side and fully
    visible, no more faces than booked, nobody in view without a face. ``booked`` None: any MATCH
    counts (the side's identities are not known to the session)."""
    limit = 1 if booked is None else len(booked)
    return (
        0 < len(obs.faces) <= limit
        and obs.persons_without_face == 0
        and all(
            f.verdict is Verdict.MATCH
            and f.visibility is Visibility.FULL
            and f.participant is not None
            and (booked is None or f.participant in booked)
            for f in obs.faces
        )
    )


_GUIDANCE: dict[tuple[Reason, str], str] = {
    (Reason.FACE_NOT_VISIBLE, Visibility.PARTIAL): (
        "your face is partly out of the picture or covered: move back so your whole face can be seen"
    ),
    (Reason.FACE_NOT_VISIBLE, Visibility.COVERED): (
        "something is in front of your face: take your hand or anything else away from your face "
        "so your whole face can be seen"
    ),
    (Reason.FACE_NOT_VISIBLE, Visibility.TURNED_AWAY): (
        "your face is turned away: please look towards the camera so your whole face can be seen"
    ),
    (Reason.FACE_NOT_VISIBLE, "person"): (
        "someone in view has their back to the camera or their face hidden: "
        "everyone in view must face the camera"
    ),
    (Reason.NO_FACE, ""): "nobody can be seen: please sit in front of the camera so your face can be seen",
    (Reason.IDENTITY_UNCONFIRMED, ""): (
        "we cannot confirm who is in view yet: face the camera, turn on a light in front of you "
        "and come a little closer"
    ),
    (Reason.POOR_LIGHTING, Lighting.DARK): (
        "it is too dark to see your face: turn on a light or move somewhere brighter"
    ),
    (Reason.POOR_LIGHTING, Lighting.OVEREXPOSED): (
        "the picture is too bright to see your face: move away from strong light or direct sunshine"
    ),
    (Reason.POOR_LIGHTING, Lighting.UNEVEN): (
        "your face is unevenly lit: face a lamp or a window so your whole face is lit evenly"
    ),
    (Reason.POOR_LIGHTING, Lighting.BACKLIT): (
        "the light is behind you: turn so the light falls on your face, not behind your head"
    ),
    (Reason.CAMERA_MOVING, ""): (
        "the camera is moving: rest your phone or tablet against something so it stays still"
    ),
    (Reason.BUSY_BACKGROUND, ""): (
        "the background behind you is busy: if you can, sit in front of a plain wall so the camera "
        "can stay focused on your face"
    ),
}


def guidance(reason: Reason, culprit: Culprit) -> str:
    """Plain words for the participant: what is wrong and what to do about it."""
    return _GUIDANCE[(reason, culprit.kind)]


__all__ = ["Culprit", "findings_in", "guidance", "is_clean"]

"""One frame's findings and the per-frame security check."""

from __future__ import annotations

import pytest
from policy_helpers import match, obs, pending, unbooked

from policies.events import Face, Lighting, Role, Verdict, Visibility
from policies.findings import Culprit, findings_in, guidance, is_clean
from policies.reasons import OBSERVED_REASONS, Reason

R = Reason


@pytest.mark.parametrize(
    ("faces", "persons", "lighting", "expected"),
    [
        ((match(),), 0, Lighting.OK, {}),
        ((pending(),), 0, Lighting.OK, {R.IDENTITY_UNCONFIRMED: Culprit(5, None, "")}),
        ((pending(samples=2),), 0, Lighting.OK, {}),  # not sampled enough: slow, not in doubt
        (  # a hidden face is a visibility question first
            (Face(5, Verdict.PENDING, "v1", visibility=Visibility.PARTIAL),),
            0,
            Lighting.OK,
            {R.FACE_NOT_VISIBLE: Culprit(5, None, "partial")},
        ),
        (  # the closest booked person is named, for staff to compare
            (Face(5, Verdict.PENDING, "v2", 0.54, samples=4),),
            0,
            Lighting.OK,
            {R.IDENTITY_UNCONFIRMED: Culprit(5, "v2", "")},
        ),
        ((match(), unbooked(4)), 0, Lighting.OK, {R.UNBOOKED_FACE: Culprit(4, None, "")}),
        (
            (match(1), match(2, "v2"), pending(3)),
            0,
            Lighting.OK,
            {
                R.TOO_MANY_FACES: Culprit(None, None, "3 faces, 2 booked"),
                R.IDENTITY_UNCONFIRMED: Culprit(3, None, ""),
            },
        ),
        (
            (match(1, visibility=Visibility.PARTIAL),),
            0,
            Lighting.OK,
            {R.FACE_NOT_VISIBLE: Culprit(1, "v1", "partial")},
        ),
        (
            (Face(2, Verdict.UNBOOKED, "v2", visibility=Visibility.TURNED_AWAY),),
            0,
            Lighting.OK,
            {R.UNBOOKED_FACE: Culprit(2, None, ""), R.FACE_NOT_VISIBLE: Culprit(2, None, "turned_away")},
        ),
        ((match(),), 1, Lighting.OK, {R.FACE_NOT_VISIBLE: Culprit(None, None, "person")}),
        ((), 2, Lighting.OK, {R.FACE_NOT_VISIBLE: Culprit(None, None, "person")}),
        ((), 0, Lighting.OK, {R.NO_FACE: Culprit()}),
        ((), 0, Lighting.DARK, {R.NO_FACE: Culprit(), R.POOR_LIGHTING: Culprit(None, None, "dark")}),
        ((match(lighting=Lighting.BACKLIT),), 0, Lighting.OK, {R.POOR_LIGHTING: Culprit(1, "v1", "backlit")}),
        ((match(),), 0, Lighting.DARK, {}),  # frame lighting only counts when no face can be judged
        (
            (match(1, visibility=Visibility.COVERED),),
            0,
            Lighting.OK,
            {R.FACE_NOT_VISIBLE: Culprit(1, "v1", "covered")},
        ),
    ],
)
def test_findings_in_one_frame(faces: tuple, persons: int, lighting: Lighting, expected: dict) -> None:
    found = findings_in(obs(0.0, *faces, persons_without_face=persons, lighting=lighting), booked_on_side=2)
    assert found == expected
    assert list(found) == [r for r in OBSERVED_REASONS if r in found]  # fixed order


@pytest.mark.parametrize(
    ("faces", "persons", "booked", "clean"),
    [
        ((match(1, "v1"),), 0, ("v1", "v2"), True),
        ((match(1, "v1"), match(2, "v2")), 0, ("v1", "v2"), True),
        ((match(1, "v1"), match(2, "v2"), match(3, "v2")), 0, ("v1", "v2"), False),
        ((), 0, ("v1",), False),
        ((match(),), 1, ("v1",), False),
        ((pending(),), 0, ("v1",), False),
        ((unbooked(),), 0, ("v1",), False),
        ((match(1, "v3"),), 0, ("v1", "v2"), False),
        ((Face(1, Verdict.MATCH, None),), 0, None, False),
        ((match(visibility=Visibility.PARTIAL),), 0, ("v1",), False),
        ((match(lighting=Lighting.DARK),), 0, ("v1",), True),  # lighting is guidance, not security
        ((match(1, "anyone"),), 0, None, True),
        ((match(1, "anyone"), match(2, "anyone")), 0, None, False),
    ],
)
def test_security_check_of_one_frame(faces: tuple, persons: int, booked: tuple | None, clean: bool) -> None:
    frame = obs(0.0, *faces, role=Role.PRISONER, persons_without_face=persons)
    assert is_clean(frame, booked) is clean


@pytest.mark.parametrize(
    ("moving", "busy", "expected"),
    [
        (True, False, {R.CAMERA_MOVING: Culprit()}),
        (False, True, {R.BUSY_BACKGROUND: Culprit()}),
        (True, True, {R.CAMERA_MOVING: Culprit(), R.BUSY_BACKGROUND: Culprit()}),
    ],
)
def test_the_picture_behind_the_faces_is_a_finding_but_never_unclean(
    moving: bool, busy: bool, expected: dict
) -> None:
    frame = obs(0.0, match(), camera_moving=moving, busy_background=busy)
    found = findings_in(frame, booked_on_side=1)
    assert found == expected and list(found) == [r for r in OBSERVED_REASONS if r in found]
    assert is_clean(frame, ("v1",))


def test_a_covered_face_is_not_clean() -> None:
    assert not is_clean(obs(0.0, match(visibility=Visibility.COVERED)), ("v1",))


def test_every_warnable_finding_has_guidance_in_plain_words() -> None:
    kinds = {
        R.FACE_NOT_VISIBLE: [*(v.value for v in Visibility if v is not Visibility.FULL), "person"],
        R.NO_FACE: [""],
        R.POOR_LIGHTING: [x.value for x in Lighting if x is not Lighting.OK],
        R.CAMERA_MOVING: [""],
        R.BUSY_BACKGROUND: [""],
    }
    texts = set()
    for reason, culprit_kinds in kinds.items():
        for kind in culprit_kinds:
            text = guidance(reason, Culprit(kind=kind))
            assert text and text[0].islower() and "_" not in text and ":" in text
            texts.add(text)
    assert len(texts) == 11

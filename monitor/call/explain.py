"""What a device is told about the call: its seat when it joins, and why the call is paused or
ended and what the security check needs, in words for the people on the call (one sentence pair
per reason).

While the call is paused, each device is told what holds it *now* (``Session.holding``: each
reason with the source it is about), in the words for its own side: a finding on its side says
what is wrong and what to do (``EXPLAIN``); one on the other side says so and asks only for
patience (``OTHER_SIDE``); a reason about the whole call (staff, a fault of the server) is said to
everyone. When nothing holds the call but the security check, that is what it says."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.call.seats import Seat
from policies.booking import Booking
from policies.decisions import State
from policies.events import Role
from policies.reasons import Reason
from signalling import messages

EXPLAIN: dict[Reason, tuple[str, str]] = {
    # reason -> (why the call is paused, what the security check needs)
    Reason.UNBOOKED_FACE: (
        "Someone who is not booked on this call is in view.",
        "Only the people booked on the call may be in view, each with their whole face visible.",
    ),
    Reason.TOO_MANY_FACES: (
        "More people are in view than are booked on this device.",
        "Only the people booked on this device may be in view.",
    ),
    Reason.FACE_NOT_VISIBLE: (
        "A face is only partly visible or turned away.",
        "Face the camera with your whole face in the picture.",
    ),
    Reason.NO_FACE: ("Nobody is in view.", "Sit in front of the camera with your face in the picture."),
    Reason.POOR_LIGHTING: (
        "The lighting is too poor to recognise faces.",
        "Turn on a light in front of you and avoid a bright window behind you.",
    ),
    Reason.CAPTURE_ATTEMPT: (
        "A recording or screenshot attempt was detected.",
        "Stop recording or screen capture. A member of staff must approve resuming the call.",
    ),
    Reason.STAFF_PAUSE: ("A member of staff paused the call.", "A member of staff must approve resuming."),
    Reason.ANALYSIS_ERROR: (
        "The security check is not working for a moment.",
        "Please wait: the call resumes once the security check works again and passes.",
    ),
    Reason.IDENTITY_UNCONFIRMED: (
        "We cannot yet confirm that everyone in view is booked on this call.",
        "Face the camera with a light in front of you; a member of staff may check your face.",
    ),
    Reason.STORE_ERROR: (
        "The call cannot be logged for a moment.",
        "Please wait: the call resumes once the log can be written again and the security check passes.",
    ),
    Reason.RECORDING_ERROR: (
        "The call cannot be recorded for a moment.",
        "Please wait: the call resumes once the recording works again and the security check passes.",
    ),
    Reason.TIME_UP: ("The booked time is over.", ""),
    Reason.STAFF_END: ("A member of staff ended the call.", ""),
}


#: A reason found on the other side of the call, as the people on this side are told it.
OTHER_SIDE: dict[Reason, str] = {
    Reason.UNBOOKED_FACE: "Someone who is not booked on this call is in view on the other side.",
    Reason.TOO_MANY_FACES: "More people are in view on the other side than are booked.",
    Reason.FACE_NOT_VISIBLE: "A face on the other side is only partly visible or turned away.",
    Reason.NO_FACE: "Nobody is in view on the other side.",
    Reason.POOR_LIGHTING: "The lighting on the other side is too poor to recognise faces.",
    Reason.IDENTITY_UNCONFIRMED: "We cannot yet confirm that everyone in view on the other side is booked.",
    Reason.CAPTURE_ATTEMPT: "A recording or screenshot attempt was detected on the other side.",
    Reason.ANALYSIS_ERROR: "The security check is not working for a moment on the other side.",
}
OTHER_SIDE_GONE = "The other side of the call is not connected."
OTHER_SIDE_NEEDS = "Nothing is needed from you: please wait until the other side is ready."
STAFF_NEEDS = "A member of staff must approve resuming the call."
CHECKING = (
    "The security check is running.",
    "Everyone booked on the call in view, each with their whole face visible.",
)

#: (reason, source) pairs: what holds a paused call (``policies.session.Session.holding``).
Holding = Iterable[tuple[Reason, str]]


def side_of(source: str, roles: Mapping[str, Role]) -> Role | None:
    """The side a reason's source is on: a device's (its seat's role), a side's own source
    (``side:visitor``), or None for the whole call (staff, the server)."""
    if source.startswith("side:"):
        with contextlib.suppress(ValueError):
            return Role(source.removeprefix("side:"))
        return None
    return roles.get(source)


def explain_pause(
    holding: Holding, role: Role | None, roles: Mapping[str, Role]
) -> tuple[list[Reason], str, str]:
    """(reasons, why, what is needed) of a paused call for a device on ``role``'s side (None: a
    device of no side, told everything as its own)."""
    reasons: list[Reason] = []
    why: list[str] = []
    needs: list[str] = []
    for reason, source in holding:
        side = side_of(source, roles)
        reasons.append(reason)
        if side is None or role is None or side is role:
            why.append(EXPLAIN[reason][0])
            needs.append(EXPLAIN[reason][1])
        else:
            gone = reason is Reason.NO_FACE and source.startswith("side:")
            why.append(OTHER_SIDE_GONE if gone else OTHER_SIDE.get(reason, EXPLAIN[reason][0]))
            needs.append(STAFF_NEEDS if reason is Reason.CAPTURE_ATTEMPT else OTHER_SIDE_NEEDS)
    if not reasons:
        return [], CHECKING[0], CHECKING[1]
    return (
        list(dict.fromkeys(reasons)),
        " ".join(dict.fromkeys(why)),
        " ".join(dict.fromkeys(n for n in needs if n)),
    )


def state_frame(
    state: State,
    holding: Holding,
    seconds_left: float,
    role: Role | None = None,
    roles: Mapping[str, Role] | None = None,
) -> dict[str, Any]:
    """The ``state`` frame a device on ``role``'s side is shown: the state and, while paused, what
    holds the call now (``holding``), why and what is needed, in the words for that side (see
    the module doc). ``roles``: the side of each device (participant) of the call."""
    reasons: list[Reason] = []
    why = needs = ""
    if state is State.PAUSED:
        reasons, why, needs = explain_pause(holding, role, roles or {})
    elif state is State.VERIFYING:
        why = "Security check before the call starts."
        needs = "Everyone booked on the call in view, each with their whole face visible."
    elif state is State.WAITING:
        why = "The call has not started yet."
    return messages.state(state.value, [r.value for r in reasons], why, needs, seconds_left)


def joined_frame(
    booking: Booking,
    seat: Seat,
    slots: list[Seat],
    state: State,
    seconds_left: float,
    ice_servers: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``joined`` frame: the device's seat, whose media it receives (``slots``), the call."""
    return messages.joined(
        call_id=booking.call_id,
        role=seat.role.value,
        participant=seat.participant,
        name=seat.name,
        slots=[{"participant": s.participant, "name": s.name} for s in slots],
        state=state.value,
        starts_at=booking.starts_at.isoformat(),
        ends_at=booking.ends_at.isoformat(),
        seconds_left=seconds_left,
        ice_servers=ice_servers,
    )


def ended_frame(reasons: Iterable[Reason]) -> dict[str, Any]:
    """The ``ended`` frame: the reasons and why, before the devices are disconnected."""
    reasons = list(reasons)
    return messages.ended([r.value for r in reasons], " ".join(EXPLAIN[r][0] for r in reasons))


__all__ = ["EXPLAIN", "OTHER_SIDE", "ended_frame", "explain_pause", "joined_frame", "side_of", "state_frame"]

"""What a device is told about the call: its seat when it joins, and why the call is paused or
ended and what the security check needs, in words for the people on the call (one sentence pair
per reason)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.call.seats import Seat
from policies.booking import Booking
from policies.decisions import State
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


def state_frame(state: State, last_reasons: Iterable[Reason], seconds_left: float) -> dict[str, Any]:
    """The ``state`` frame a device is shown: the state, and while paused or ended the reasons of
    the latest state change, why and what is needed."""
    reasons = list(last_reasons) if state in (State.PAUSED, State.ENDED) else []
    why = " ".join(EXPLAIN[r][0] for r in reasons)
    needs = " ".join(dict.fromkeys(EXPLAIN[r][1] for r in reasons if EXPLAIN[r][1]))
    if state is State.VERIFYING:
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


__all__ = ["EXPLAIN", "ended_frame", "joined_frame", "state_frame"]

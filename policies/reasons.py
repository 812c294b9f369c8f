"""The fixed vocabulary of reasons used on every timeline, alert and console view."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    UNBOOKED_FACE = "unbooked_face"
    TOO_MANY_FACES = "too_many_faces"
    FACE_NOT_VISIBLE = "face_not_visible"
    NO_FACE = "no_face"
    POOR_LIGHTING = "poor_lighting"
    IDENTITY_UNCONFIRMED = "identity_unconfirmed"
    CAMERA_MOVING = "camera_moving"
    BUSY_BACKGROUND = "busy_background"
    CAPTURE_ATTEMPT = "capture_attempt"
    STAFF_PAUSE = "staff_pause"
    ANALYSIS_ERROR = "analysis_error"
    STORE_ERROR = "store_error"
    RECORDING_ERROR = "recording_error"
    TIME_UP = "time_up"
    STAFF_END = "staff_end"


#: Findings that analysis can raise frame by frame (debounced by the session).
OBSERVED_REASONS: tuple[Reason, ...] = (
    Reason.UNBOOKED_FACE,
    Reason.TOO_MANY_FACES,
    Reason.FACE_NOT_VISIBLE,
    Reason.NO_FACE,
    Reason.POOR_LIGHTING,
    Reason.IDENTITY_UNCONFIRMED,
    Reason.CAMERA_MOVING,
    Reason.BUSY_BACKGROUND,
)

#: Findings that only ever give the participant guidance: the policy has no pause window for them
#: and the security check never looks at them, so they neither pause a call nor keep it from going live.
GUIDANCE_ONLY_REASONS: tuple[Reason, ...] = (Reason.CAMERA_MOVING, Reason.BUSY_BACKGROUND)

#: Faults of the server itself that keep a call from being watched or kept (``FaultRaised``).
FAULT_REASONS: tuple[Reason, ...] = (Reason.STORE_ERROR, Reason.RECORDING_ERROR)

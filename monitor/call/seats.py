"""A call's seats and the rules for taking one: who may join, when, and whose media each receives.

Each booked person has a seat with a random single-call token (the in-memory join link of a
server without a store; with a store, the store's tokens name the seat instead). The rules are
the same wherever the call runs (``call.Call`` in this process, or the front's stand-in
``monitor.relay_workers.remote_call.RemoteCall``): functions of the booking, the call's time and
state, and which seats are taken.
"""

from __future__ import annotations

import secrets
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from policies.booking import Booking
from policies.decisions import State
from policies.events import Role

#: A join link works from this long before the booked start.
JOIN_EARLY_S = 15 * 60.0


class JoinRefused(Exception):
    """A device may not take the seat; ``code`` and ``message`` are for the device's user.
    ``opens_at``: when the link starts to work (ISO 8601), for a link used too early (a join page
    says it in the device's own time zone)."""

    def __init__(self, code: str, message: str, opens_at: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.opens_at = opens_at


def in_words(when: datetime) -> str:
    """A time for people: ``14:00 on Monday 7 December 2026 (UTC)``, in its own offset."""
    offset = when.utcoffset()
    zone = "UTC" if not offset else f"UTC{when.strftime('%z')[:3]}:{when.strftime('%z')[3:]}"
    return f"{when:%H:%M} on {when:%A} {when.day} {when:%B %Y} ({zone})"


def too_early(opens: datetime) -> JoinRefused:
    """The refusal of a link used before ``opens`` (an aware datetime)."""
    return JoinRefused("too_early", f"this link works from {in_words(opens)}", opens.isoformat())


@dataclass(frozen=True, slots=True)
class Seat:
    participant: str  # booked id; also the media source name
    role: Role
    name: str
    token: str
    analysed: bool  # the seat's camera is analysed (the prisoner's only with a reference photo)


def make_seats(booking: Booking) -> dict[str, Seat]:
    """The booking's seats by their new random tokens: the prisoner's, then each visitor's."""
    prisoner = booking.prisoner
    people = [(prisoner.id, Role.PRISONER, prisoner.name, bool(prisoner.reference_photos))]
    people += [(v.id, Role.VISITOR, v.name, True) for v in booking.participants]
    seats: dict[str, Seat] = {}
    for participant, role, name, analysed in people:
        token = secrets.token_urlsafe(24)
        seats[token] = Seat(participant, role, name, token, analysed)
    return seats


def seat_of(seats: Iterable[Seat], participant: str) -> Seat | None:
    return next((s for s in seats if s.participant == participant), None)


def check_seat(seat: Seat, *, booking: Booking, now: float, state: State, taken: Container[str]) -> Seat:
    """The seat, if a device may take it at call time ``now``; else JoinRefused with the reason.
    ``taken``: the participants whose seat a device holds."""
    if state is State.ENDED or now >= booking.duration_s:
        raise JoinRefused("call_over", "this call has ended")
    if now < -JOIN_EARLY_S:
        raise too_early(booking.starts_at - timedelta(seconds=JOIN_EARLY_S))
    if seat.participant in taken:
        raise JoinRefused("token_in_use", "this link is already in use on another device")
    return seat


def slots(seats: Iterable[Seat], seat: Seat) -> list[Seat]:
    """Whose media ``seat`` receives, in transceiver order: the prisoner one slot per visitor, a
    visitor the prisoner."""
    other = Role.VISITOR if seat.role is Role.PRISONER else Role.PRISONER
    return [s for s in seats if s.role is other]


__all__ = [
    "JOIN_EARLY_S",
    "JoinRefused",
    "Seat",
    "check_seat",
    "in_words",
    "make_seats",
    "seat_of",
    "slots",
    "too_early",
]

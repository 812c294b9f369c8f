"""What the store hands out and takes in: prisoners, visitors and their photos, bookings, calls and
join tokens, as frozen values (``monitor.store.database`` reads and writes them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prisoner:
    id: str
    name: str
    prison: str


@dataclass(frozen=True, slots=True)
class Photo:
    path: str
    sha256: str
    embedding: bytes  # float64 little-endian


@dataclass(frozen=True, slots=True)
class Visitor:
    id: str
    name: str
    date_of_birth: str
    photos: tuple[Photo, ...] = ()


@dataclass(frozen=True, slots=True)
class BookedVisitor:
    visitor_id: str
    main_caller: bool


@dataclass(frozen=True, slots=True)
class BookingRow:
    call_id: str
    prisoner_id: str
    prison: str
    starts_at: float
    ends_at: float
    starts_iso: str
    ends_iso: str
    document: str  # validated booking JSON
    visitors: tuple[BookedVisitor, ...]


@dataclass(frozen=True, slots=True)
class CallRow:
    call_id: str
    state: str
    interrupted: bool
    updated_at: float
    node: str | None = None  # the node that last wrote its state (None: one server, no --node)


@dataclass(frozen=True, slots=True)
class JoinToken:
    call_id: str
    participant: str
    role: str
    not_before: float
    not_after: float


__all__ = ["BookedVisitor", "BookingRow", "CallRow", "JoinToken", "Photo", "Prisoner", "Visitor"]

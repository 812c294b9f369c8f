"""Staff verdicts on an undecided face: what staff are shown to judge it, and the checks before one
is sent to the call.

An ``identity_unconfirmed`` alert names a face track of one device (``source``, ``track``) that
identity analysis could neither confirm as someone booked nor rule out, and the closest booked
person. Staff judge it by looking at the alert's evidence frame next to the reference photos of
the people booked on that device's side (the prisoner's side: the prisoner; else the visitors), and
then confirm the face as one of them or reject it as nobody booked.

Reference photos are served like evidence frames: addressed by their SHA-256 (as enrolled, stored
with the person), only to staff of the call's prison and only for a person booked on that call,
and only when the file still has that digest (a file changed on disk since enrolment is not the
photo the analysis compares against, so it is never shown as if it were). Every verdict's audit
record names the alert, its evidence frame and the digests of the photos staff were shown.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import BookingRow, Photo, Store

log = logging.getLogger(__name__)

REASON = "identity_unconfirmed"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_IMAGE_TYPES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"BM", "image/bmp"),
)


class NotJudgeable(Exception):
    """The alert cannot be judged by staff here; the text says why (it goes back to the console)."""


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    photos: tuple[Photo, ...]

    def public(self, call_id: str) -> dict[str, Any]:
        urls = [f"/console/api/reference/{call_id}/{self.id}/{p.sha256}" for p in self.photos]
        return {"id": self.id, "name": self.name, "photos": urls}


@dataclass(frozen=True, slots=True)
class UndecidedFace:
    """One ``identity_unconfirmed`` alert of a staff member's prison, with the booking it is about."""

    alert: AuditRecord
    booking: BookingRow
    source: str
    track: int
    closest: str | None

    @property
    def side(self) -> str:
        return "prisoner" if self.source == self.booking.prisoner_id else "visitor"

    def people(self, store: Store) -> list[Person]:
        """The people booked on the face's side, in booking order, with their reference photos."""
        names = _names(self.booking)
        if self.side == "prisoner":
            pid = self.booking.prisoner_id
            return [Person(pid, names.get(pid, pid), store.prisoner_photos(pid))]
        found = []
        for booked in self.booking.visitors:
            visitor = store.visitor(booked.visitor_id)
            photos = visitor.photos if visitor is not None else ()
            found.append(Person(booked.visitor_id, names.get(booked.visitor_id, booked.visitor_id), photos))
        return found

    def public(self, store: Store) -> dict[str, Any]:
        """What the console shows staff to judge the face (``GET /console/api/identity/<alert id>``)."""
        return {
            "alert_id": self.alert.id,
            "call_id": self.booking.call_id,
            "source": self.source,
            "track": self.track,
            "side": self.side,
            "closest": self.closest,
            "evidence": self.alert.evidence,
            "people": [p.public(self.booking.call_id) for p in self.people(store)],
        }

    def audit_data(self, store: Store, action: str, participant: str | None) -> dict[str, Any]:
        """The audit record of a verdict: the alert, the face, the frame and the photos shown."""
        data: dict[str, Any] = {
            "action": action,
            "alert_id": self.alert.id,
            "source": self.source,
            "track": self.track,
        }
        if participant is not None:
            data["participant"] = participant
        data["evidence"] = self.alert.evidence
        data["reference_photos"] = {p.id: [ph.sha256 for ph in p.photos] for p in self.people(store)}
        return data


def _names(booking: BookingRow) -> dict[str, str]:
    document = json.loads(booking.document)
    names = {str(v.get("id")): str(v.get("name")) for v in document.get("participants", [])}
    prisoner = document.get("prisoner", {})
    names[str(prisoner.get("id"))] = str(prisoner.get("name"))
    return names


def undecided_face(store: Store, log_: AuditLog, prison: str, alert_id: int) -> UndecidedFace:
    """The ``identity_unconfirmed`` alert ``alert_id`` of ``prison``, or NotJudgeable."""
    alert = log_.get(alert_id)
    booking = store.booking(alert.call_id) if alert is not None and alert.call_id else None
    if alert is None or alert.kind != "alert" or alert.prison != prison or booking is None:
        raise NotJudgeable("no such alert")
    if alert.data.get("reason") != REASON:
        raise NotJudgeable("only a 'face not confirmed' alert can be confirmed or rejected")
    source, track = alert.data.get("source"), alert.data.get("track")
    if not isinstance(source, str) or not source or isinstance(track, bool) or not isinstance(track, int):
        raise NotJudgeable("this alert names no face track")
    closest = alert.data.get("participant")
    return UndecidedFace(alert, booking, source, track, closest if isinstance(closest, str) else None)


def reference_photo(store: Store, booking: BookingRow, person_id: str, digest: str) -> Path | None:
    """The file of the reference photo ``digest`` of ``person_id``, booked on ``booking``, or None."""
    if not _DIGEST.match(digest):
        return None
    if person_id == booking.prisoner_id:
        photos = store.prisoner_photos(person_id)
    elif any(v.visitor_id == person_id for v in booking.visitors):
        visitor = store.visitor(person_id)
        photos = visitor.photos if visitor is not None else ()
    else:
        return None
    photo = next((p for p in photos if p.sha256 == digest), None)
    return None if photo is None else store.photo_path(photo)


def read_photo(path: Path, digest: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a reference photo's file, None when it cannot be read or no longer
    has the digest it was enrolled with. Blocking: run it off the event loop."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        log.warning("reference photo %s changed on disk since it was enrolled: not shown", path)
        return None
    kind = next((t for magic, t in _IMAGE_TYPES if data.startswith(magic)), None)
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "image/webp"
    return data, kind or "application/octet-stream"


__all__ = [
    "REASON",
    "NotJudgeable",
    "Person",
    "UndecidedFace",
    "read_photo",
    "reference_photo",
    "undecided_face",
]

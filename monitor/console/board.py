"""What the console shows, read from the store: the board of calls and one call's history.

Pure reads; the audit log is the source of truth for what happened (states, alerts, who joined),
the bookings for who was booked. Nothing here is kept in memory between requests.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.call.held import held_pause
from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import BookingRow, Store

#: Records staff must see and acknowledge: the policy's alerts, a failed recording, an email to a
#: family given up on (monitor/mail/sender.py).
ALERT_KINDS = ("alert", "recording_failed", "mail_failed")
JOIN_EVENTS = {"joined": True, "left": False, "participant_joined": True, "participant_left": False}


def _names(store: Store, booking: BookingRow) -> dict[str, Any]:
    document = json.loads(booking.document)
    prisoner = document.get("prisoner", {})
    visitors = [
        {"id": v.get("id"), "name": v.get("name"), "main_caller": bool(v.get("main_caller"))}
        for v in document.get("participants", [])
    ]
    return {"prisoner": {"id": prisoner.get("id"), "name": prisoner.get("name")}, "visitors": visitors}


def present(records: list[AuditRecord]) -> list[dict[str, Any]]:
    """Devices in the call now, from its join/leave records: [{source, participant, role}]."""
    devices: dict[str, dict[str, Any]] = {}
    for record in records:
        kind = record.kind if record.kind in JOIN_EVENTS else str(record.data.get("event", ""))
        if kind not in JOIN_EVENTS:
            continue
        source = str(record.data.get("source", ""))
        if JOIN_EVENTS[kind]:
            devices[source] = {
                "source": source,
                "participant": record.data.get("participant"),
                "role": record.data.get("role", "visitor"),
            }
        else:
            devices.pop(source, None)
    return list(devices.values())


#: Staff actions that answer an alert: acknowledging it, or a verdict on its face (console/identity.py).
ANSWERS = ("acknowledge", "confirm_identity", "reject_identity")


def acknowledged(records: list[AuditRecord]) -> set[int]:
    return {
        int(r.data["alert_id"])
        for r in records
        if r.kind == "staff_action" and r.data.get("action") in ANSWERS and "alert_id" in r.data
    }


def resume_route(records: list[AuditRecord]) -> str | None:
    """How a paused call can go live again, from its records (None when it is not paused):
    ``automatic``, ``needs_staff`` or ``awaiting_staff`` (``monitor.call.held.HeldPause.route``,
    the reading a rebuilt call carries its pause over by)."""
    return held_pause(records).route


def live_present(call: Any) -> list[dict[str, Any]]:
    """Devices connected to a running call (``monitor.call.call.Call.devices``)."""
    devices = getattr(call, "devices", None) or {}
    found = []
    for participant, device in dict(devices).items():
        role = getattr(getattr(getattr(device, "seat", None), "role", None), "value", "visitor")
        found.append({"source": participant, "participant": participant, "role": role})
    return found


def call_summary(
    store: Store, log: AuditLog, booking: BookingRow, now: float, calls: Any = None
) -> dict[str, Any]:
    records = log.for_call(booking.call_id)
    live = calls.get(booking.call_id) if calls is not None else None
    call = store.call(booking.call_id)
    acks = acknowledged(records)
    alerts = [r for r in records if r.kind in ALERT_KINDS]
    last_state = next((r for r in reversed(records) if r.kind == "state"), None)
    return {
        "call_id": booking.call_id,
        **_names(store, booking),
        "starts_at": booking.starts_at,
        "ends_at": booking.ends_at,
        "state": str(live.state) if live is not None else (call.state if call else "waiting"),
        "reasons": list(last_state.data.get("reasons", [])) if last_state else [],
        "resume": resume_route(records),
        "interrupted": bool(call and call.interrupted),
        "time_left_s": max(0.0, booking.ends_at - max(now, booking.starts_at)),
        "present": live_present(live) if live is not None else present(records),
        "running": live is not None and str(live.state) != "ended",
        "alerts": len(alerts),
        "unacknowledged": len([a for a in alerts if a.id not in acks]),
    }


def board(
    store: Store, prison: str, start: float, end: float, now: float, calls: Any = None
) -> list[dict[str, Any]]:
    log = AuditLog(store)
    return [call_summary(store, log, b, now, calls) for b in store.bookings_between(start, end, prison)]


def history(store: Store, booking: BookingRow, now: float, calls: Any = None) -> dict[str, Any]:
    log = AuditLog(store)
    records = log.for_call(booking.call_id)
    return {
        **call_summary(store, log, booking, now, calls),
        "records": [r.public() for r in records],
        "acknowledged": sorted(acknowledged(records)),
    }


def store_status(store: Store, log: AuditLog, prison: str) -> dict[str, Any]:
    """Whether the audit records are being written (``ok``; else ``detail``, the records
    ``waiting`` and the ``calls`` of ``prison`` among those whose records wait: they are paused)."""
    health = log.health()
    if health.ok:
        return {"ok": True, "detail": "", "waiting": 0, "calls": []}
    calls = sorted(c for c in health.calls if (b := store.booking(c)) is not None and b.prison == prison)
    return {"ok": False, "detail": health.detail, "waiting": health.waiting, "calls": calls}

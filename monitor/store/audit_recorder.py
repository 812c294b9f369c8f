"""The console's recorder: every record the live calls publish on the hub goes to the audit log.

It is a sink of the hub (``Hub.attach``), not a subscription: the hub calls it inside ``publish``
with every record, in order, so none is skipped, however fast the calls publish. It hands each to
the log's writer thread (``audit_writer.py``), whose bounded queue makes the publisher wait when
it is full rather than lose a record.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from typing import Any

from monitor.store.audit import AuditLog, AuditRecord
from monitor.store.database import StoreError

log = logging.getLogger(__name__)

#: Hub records that are not policy decisions, and who they are written as.
PRESENCE_KINDS = ("joined", "left")  # the participant's device (``device:<id>``) or ``system``
SYSTEM_KINDS = ("recording_failed", "recording_off")


def storable(value: Any) -> Any:
    """``value`` with whatever JSON or UTF-8 cannot hold made printable: a lone surrogate as its
    ``\\udXXX`` escape, NaN and infinities and other objects as their repr."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return storable(repr(value))


class HubRecorder:
    """Writes every record the live calls publish on the hub to the audit log.

    The calls publish timeline records (``monitor.record.timeline``) tagged with ``call_id``; each becomes
    one audit record of the call's prison (from the store's booking, else the live call's booking).
    Policy decisions are written by the ``policy`` actor; a join or leave by the participant's
    device (``device:<participant>``), or ``system`` when the server dropped the device (the record's
    ``actor``); a recording failure by ``system``. For an alert, a call that offers
    ``evidence_jpeg(source)`` gives the frame behind it, stored as the record's evidence. A record
    whose data cannot be stored as they are (a lone surrogate from a client) is stored with them
    made printable and ``"sanitized": true``. :meth:`stop` writes what was handed over before
    returning.
    """

    def __init__(self, log: AuditLog, hub: Any, calls: Any = None) -> None:
        self.log = log
        self.hub = hub
        self.calls = calls
        self.written = 0
        self.failed = 0
        self._attached = False

    def start(self) -> None:
        """Attach to the hub: every record published from now on is written."""
        if not self._attached:
            self.hub.attach(self.accept)
            self._attached = True

    def stop(self) -> None:
        if self._attached:
            self.hub.detach(self.accept)
            self._attached = False
        if self.log.writer is not None:
            self.log.writer.close()  # what was handed over is written before the server goes

    def _live(self, call_id: str) -> Any:
        return self.calls.get(call_id) if self.calls is not None else None

    def _prison(self, call_id: str) -> str:
        booking = self.log.store.booking(call_id)
        if booking is not None:
            return booking.prison
        live = self._live(call_id)
        prison = getattr(getattr(live, "booking", None), "prison", None)
        return prison if isinstance(prison, str) and prison else "unknown"

    def _evidence(self, call_id: str, record: dict[str, Any]) -> bytes | None:
        grab = getattr(self._live(call_id), "evidence_jpeg", None)
        if not callable(grab):
            return None
        try:
            jpeg = grab(str(record.get("source") or ""))
        except Exception:
            log.exception("evidence frame for call %s failed", call_id)
            return None
        return jpeg if isinstance(jpeg, bytes) else None

    @staticmethod
    def actor(kind: str, data: dict[str, Any]) -> str:
        """Who a hub record is written as (takes a presence record's ``actor`` out of its data)."""
        if kind in PRESENCE_KINDS:
            given = data.pop("actor", None)
            if given == "system":
                return "system"
            return f"device:{data.get('participant') or data.get('source') or 'unknown'}"
        if kind in SYSTEM_KINDS:
            return "system"
        return "policy"

    def submit(self, item: dict[str, Any]) -> asyncio.Future[AuditRecord] | None:
        """Hand one hub record to the log; None when it is not a call record."""
        data = dict(item)
        call_id = data.pop("call_id", None)
        kind = data.get("kind")
        if not isinstance(call_id, str) or not isinstance(kind, str):
            log.error("hub record without call_id or kind: %r", item)
            return None
        actor = self.actor(kind, data)
        evidence = self._evidence(call_id, data) if kind == "alert" else None
        prison = self._prison(call_id)
        try:
            return self.log.submit(kind, data, prison=prison, call_id=call_id, actor=actor, evidence=evidence)
        except StoreError:  # kept, made printable: the record of what happened matters more
            clean, call = {**storable(data), "sanitized": True}, storable(call_id)
            return self.log.submit(
                storable(kind), clean, prison=prison, call_id=call, actor=actor, evidence=evidence
            )

    def accept(self, item: dict[str, Any]) -> None:
        """The hub sink: one published record to the log (never raises into the publisher)."""
        try:
            future = self.submit(item)
        except Exception:
            self.failed += 1
            log.exception("audit record from the hub cannot be written: %r", item)
            return
        if future is not None:
            future.add_done_callback(functools.partial(self._done, item))

    def _done(self, item: dict[str, Any], future: asyncio.Future[AuditRecord]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.written += 1
        else:
            self.failed += 1
            log.error("audit record from the hub failed: %r: %s", item, error)

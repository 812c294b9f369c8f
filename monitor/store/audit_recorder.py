"""The console's recorder: every record the live calls publish on the hub goes to the audit log."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

from monitor.store.audit import AuditLog, AuditRecord

log = logging.getLogger(__name__)

#: Hub records that are not policy decisions, and who they are written as.
PRESENCE_KINDS = ("joined", "left")  # the participant's device (``device:<id>``) or ``system``
SYSTEM_KINDS = ("recording_failed",)
#: Records the recorder may have handed to the writer and not seen committed before it waits.
MAX_PENDING = 256


class HubRecorder:
    """Writes every record the live calls publish on the hub to the audit log.

    The calls publish timeline records (``monitor.record.timeline``) tagged with ``call_id``; each becomes
    one audit record of the call's prison (from the store's booking, else the live call's booking).
    Policy decisions are written by the ``policy`` actor; a join or leave by the participant's
    device (``device:<participant>``), or ``system`` when the server dropped the device (the record's
    ``actor``); a recording failure by ``system``. For an alert, a call that offers
    ``evidence_jpeg(source)`` gives the frame behind it, stored as the record's evidence. The
    subscription is taken in :meth:`start`, so nothing published after it is missed. Records go to
    the log's writer thread in hub order without waiting for each commit (at most ``MAX_PENDING``
    in flight); :meth:`stop` writes what was handed over before returning.
    """

    def __init__(self, log: AuditLog, hub: Any, calls: Any = None) -> None:
        self.log = log
        self.hub = hub
        self.calls = calls
        self.task: asyncio.Task[None] | None = None
        self.written = 0
        self._pending: set[asyncio.Future[AuditRecord]] = set()

    def start(self) -> asyncio.Task[None]:
        subscription = self.hub.subscribe()
        self.task = asyncio.get_running_loop().create_task(self._run(subscription))
        return self.task

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
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
        return self.log.submit(
            kind, data, prison=self._prison(call_id), call_id=call_id, actor=actor, evidence=evidence
        )

    def _done(self, item: dict[str, Any], future: asyncio.Future[AuditRecord]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            self.written += 1
        else:
            log.error("audit record from the hub failed: %r: %s", item, error)

    async def _run(self, subscription: Any) -> None:
        while True:
            async for item in subscription:
                if len(self._pending) >= MAX_PENDING:  # the writer is behind: wait for it
                    await asyncio.wait(self._pending, return_when=asyncio.FIRST_COMPLETED)
                try:
                    future = self.submit(item)
                except Exception:  # one bad record must not stop the audit trail
                    log.exception("audit record from the hub failed: %r", item)
                    continue
                if future is not None:
                    self._pending.add(future)
                    future.add_done_callback(functools.partial(self._done, item))
            log.error("audit recorder fell behind the hub and was dropped; subscribing again")
            subscription = self.hub.subscribe()

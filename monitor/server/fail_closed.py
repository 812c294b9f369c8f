"""What keeps the server's calls from going on where they must not: the server's side of failing
closed (the policy core decides; this turns the server's facts into its events).

- **Held over a restart**: a call is rebuilt with what its audit records say must survive
  (``monitor.call.held``: the pause reasons that still need staff, or that staff ended it), and a
  call whose stored state is ``ended`` is never served again. A cluster's node taking over the call
  of a node that stopped rebuilds it the same way (the pause's alert names that node).
- **Records that cannot be written**: the audit writer's health hook (``AuditWriter.on_health``)
  names the calls whose records wait; each gets ``FaultRaised(store_error)`` (again when the
  detail changes) and ``FaultCleared`` once they are written (a relay worker's call through its
  stand-in, ``RemoteCall.fault``).
- **Recording turned off** (``monitor serve --no-record``): each call's records say so
  (``recording_off``), once the console's audit recorder listens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from monitor.call.handle import CallHandle
from monitor.call.held import CarriedOver, HeldPause, held_pause
from monitor.hub import Hub
from monitor.store.audit_record import StoreHealth
from policies.config import PolicyConfig
from policies.reasons import Reason

log = logging.getLogger(__name__)


class FailClosed:
    """``store``: the server's store (None: nothing is kept across a restart); ``hub``: where
    the calls publish; ``unrecorded``: why calls are not recorded ("": they are)."""

    def __init__(self, store: Any, hub: Hub, config: PolicyConfig, unrecorded: str = "") -> None:
        self.store = store
        self.staff_reasons = [r.value for r in config.staff_approval_reasons]
        self.hub = hub
        self.unrecorded = unrecorded
        self.listening = False  # the console's audit recorder is attached to the hub
        self._store_faults: dict[str, str] = {}  # call id -> why its audit records wait
        self._tasks: set[asyncio.Task[Any]] = set()

    # ---- held over a restart ----------------------------------------------------------------------
    def held(self, call_id: str) -> HeldPause | None:
        """What the call's audit records say about its pause (None without a store)."""
        if self.store is None:
            return None
        from monitor.store.audit import AuditLog

        return held_pause(AuditLog(self.store).for_call(call_id), self.staff_reasons)

    def carried(self, call_id: str, held: HeldPause | None) -> CarriedOver | None:
        """What a call rebuilt now takes over from its records (``held``), logged when anything."""
        carried = held.carried(self.rebuilt_after(call_id)) if held is not None else None
        if carried:
            log.warning(
                "call %s rebuilt (%s): %s",
                call_id,
                carried.detail,
                "it was ended by staff"
                if carried.ended
                else "still paused for " + ", ".join(carried.reasons) + " until staff approve",
            )
        return carried

    def rebuilt_after(self, call_id: str) -> str:
        """What happened to the call's earlier session, as its carried-over pause says: the
        server restarted, or (a cluster's node loading a call another node last ran, whose
        heartbeat stopped: ``monitor.cluster``) that node stopped."""
        row = self.store.call(call_id) if self.store is not None else None
        here = getattr(self.store, "node", None)
        if row is not None and row.node and here and row.node != here:
            return f"node {row.node} stopped; the call moved to node {here}"
        return "the server restarted"

    def ended(self, call_id: str) -> bool:
        """The store says the call has ended: it is never served again."""
        row = self.store.call(call_id) if self.store is not None else None
        return row is not None and row.state == "ended"

    # ---- records that cannot be written -----------------------------------------------------------
    def store_health(self, health: StoreHealth, calls: Iterable[CallHandle[Any]]) -> None:
        """The audit log's writes failed, or caught up (called on the event loop)."""
        failing = set(health.calls) if not health.ok else set()
        for call in calls:
            known = self._store_faults.get(call.call_id)
            if call.call_id in failing and known != health.detail:
                self._store_faults[call.call_id] = health.detail
                self._later(call.fault(Reason.STORE_ERROR, health.detail, True))
            elif call.call_id not in failing and known is not None:
                del self._store_faults[call.call_id]
                self._later(call.fault(Reason.STORE_ERROR, "", False))

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- recording turned off ---------------------------------------------------------------------
    def note_unrecorded(self, call: CallHandle[Any]) -> None:
        """With recording turned off, the call's records say so (once the audit recorder listens:
        the server calls this again for the calls it loaded before)."""
        if self.unrecorded and self.listening:
            record = {"kind": "recording_off", "t": round(call.now(), 3), "detail": self.unrecorded}
            self.hub.publish(call.call_id, record)


__all__ = ["FailClosed"]

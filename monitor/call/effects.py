"""What the session's decisions do, in one place: the gate, what each device is told, what staff
see and the live timeline.

``StateChanged`` opens or closes the shared gate (media flows only while ``live``) and is sent to
every device as a state frame (``explain.state_frame``); a warning goes to the device it concerns,
and so does its clearing; an alert is for staff only. Every decision is published to the staff hub
and appended to the call's timeline. ``ended`` is left to the caller (it sends the ended frame and
closes the call). Joins and departures are published for staff too (board, history, audit), but
they are not in the timeline: the timeline is the policy's decisions, the same as replay's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monitor.call.peer import Device
from monitor.call.seats import Seat
from monitor.media.tracks import Gate
from monitor.record.timeline import decision_record
from policies.decisions import Alert, Decision, State, StateChanged, WarningCleared, WarningIssued
from policies.reasons import Reason
from signalling import messages

Frame = dict[str, Any]


class Effects:
    """Applies one call's decisions; ``decisions`` keeps them all, ``last_reasons`` those of the
    latest state change. ``publish``: to the staff hub; ``write_timeline``: to the call's timeline."""

    def __init__(
        self,
        gate: Gate,
        devices: Mapping[str, Device],
        publish: Callable[[dict[str, Any]], None],
        write_timeline: Callable[[dict[str, Any]], None],
        now: Callable[[], float],
    ) -> None:
        self.gate = gate
        self.devices = devices
        self.publish = publish
        self.write_timeline = write_timeline
        self.now = now
        self.decisions: list[Decision] = []
        self.last_reasons: tuple[Reason, ...] = ()

    async def apply(
        self, decisions: Iterable[Decision], state_frame: Callable[[], Frame]
    ) -> tuple[Reason, ...] | None:
        """Apply ``decisions`` in order; the reasons the call ended for, if it did.
        ``state_frame``: the state frame the devices are shown now."""
        outgoing: list[tuple[str | None, Frame]] = []  # (participant or None: everyone, frame)
        end: tuple[Reason, ...] | None = None
        for decision in decisions:
            self.decisions.append(decision)
            record = decision_record(decision)
            self.write_timeline(record)
            self.publish(record)
            match decision:
                case StateChanged():
                    self.gate.is_open = decision.state is State.LIVE
                    self.last_reasons = decision.reasons
                    if decision.state is State.ENDED:
                        end = decision.reasons
                    else:
                        outgoing.append((None, state_frame()))
                case WarningIssued():
                    frame = messages.warning(decision.reason.value, decision.guidance)
                    outgoing.append((decision.source, frame))
                case WarningCleared():
                    outgoing.append((decision.source, messages.warning_cleared(decision.reason.value)))
                case Alert():
                    pass  # staff only: published to the hub above
        for participant, frame in outgoing:
            if participant is None:
                await self.broadcast(frame)
            else:
                await self.send_to(participant, frame)
        return end

    def presence(self, kind: str, seat: Seat, actor: str = "device") -> None:
        """A device ``joined`` or ``left``. ``actor``: ``device`` (the participant's device did it)
        or ``system`` (the server dropped the device)."""
        record = {"kind": kind, "t": round(self.now(), 3), "source": seat.participant}
        self.publish({**record, "participant": seat.participant, "role": seat.role.value, "actor": actor})

    async def send_to(self, participant: str, frame: Frame) -> None:
        device = self.devices.get(participant)
        if device is not None:
            with contextlib.suppress(Exception):
                await device.send(frame)

    async def broadcast(self, frame: Frame) -> None:
        for participant in list(self.devices):
            await self.send_to(participant, frame)


__all__ = ["Effects"]

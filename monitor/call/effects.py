"""What the session's decisions do, in one place: the gate, what each device is told, what staff
see and the live timeline.

``StateChanged`` opens or closes the shared gate (media flows only while ``live``; while it is
closed the gate names the slate: waiting to start, the security check, or paused). Each device is
shown a state frame (``explain.state_frame``: the state and what holds the call now, in the words
for its side) whenever what it says changes, after every batch of decisions (:meth:`Effects.show`):
a reason added or gone while paused changes it as a state change does. A warning goes to the
device it concerns, and so does its clearing; an alert is for staff only. Every decision is
published to the staff hub and appended to the call's timeline. ``ended`` is left to the caller
(it sends the ended frame and closes the call). Joins and departures are published for staff
too (board, history, audit), but they are not in the timeline: the timeline is the policy's
decisions, the same as replay's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monitor.call.peer import Device
from monitor.call.seats import Seat
from monitor.media.tracks import Gate, SlateKind
from monitor.record.timeline import decision_record
from policies.decisions import Alert, Decision, State, StateChanged, WarningCleared, WarningIssued
from policies.reasons import Reason
from signalling import messages

Frame = dict[str, Any]

#: The slate a closed gate shows in each state (the live call's gate is open).
CLOSED_AS = {State.WAITING: SlateKind.STARTING, State.VERIFYING: SlateKind.CHECKING}


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
        self.shown: dict[str, tuple[Any, ...]] = {}  # participant -> what its last state frame said

    async def apply(
        self, decisions: Iterable[Decision], state_frame: Callable[[str], Frame]
    ) -> tuple[Reason, ...] | None:
        """Apply ``decisions`` in order; the reasons the call ended for, if it did.
        ``state_frame``: the state frame a device (by participant) is shown now."""
        outgoing: list[tuple[str, Frame]] = []  # (participant, frame)
        end: tuple[Reason, ...] | None = None
        for decision in decisions:
            self.decisions.append(decision)
            record = decision_record(decision)
            self.write_timeline(record)
            self.publish(record)
            match decision:
                case StateChanged():
                    self.gate.is_open = decision.state is State.LIVE
                    self.gate.closed_as = CLOSED_AS.get(decision.state, SlateKind.PAUSED)
                    self.last_reasons = decision.reasons
                    if decision.state is State.ENDED:
                        end = decision.reasons
                case WarningIssued():
                    frame = messages.warning(decision.reason.value, decision.guidance)
                    outgoing.append((decision.source, frame))
                case WarningCleared():
                    outgoing.append((decision.source, messages.warning_cleared(decision.reason.value)))
                case Alert():
                    pass  # staff only: published to the hub above
        for participant, frame in outgoing:
            await self.send_to(participant, frame)
        if end is None:
            await self.show(state_frame)
        return end

    async def show(self, state_frame: Callable[[str], Frame]) -> None:
        """Send each device its state frame when what it says (state, reasons, words) changed
        since the last one it was sent (a device that (re)joins is sent one: ``forget``)."""
        for participant in list(self.devices):
            frame = state_frame(participant)
            said = (frame["state"], tuple(frame["reasons"]), frame["explanation"], frame["needs"])
            if self.shown.get(participant) != said:
                self.shown[participant] = said
                await self.send_to(participant, frame)

    def forget(self, participant: str) -> None:
        """The participant's device is new: its next state frame is sent whatever it says."""
        self.shown.pop(participant, None)

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

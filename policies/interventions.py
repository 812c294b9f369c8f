"""What happens to a call from outside its analysis: staff actions, capture attempts, faults of the
server, and a pause carried over a restart.

These are the session's handlers for those events (named in ``TRANSITIONS``, policies/session.py);
:class:`Interventions` is a part of :class:`~policies.session.Session` and works on its state
through the few members declared below. A capture attempt pauses the call at once and needs staff;
repeats while that pause holds are one *episode*: counted on its one alert (``AlertRepeated`` at
2, 4, 8, ... attempts and, exactly, when the episode ends), never a new alert each. Staff may
confirm a face track as a booked person or reject it as nobody booked: the verdict replaces
analysis's for that track for as long as its device stays (a rejoined device's tracks are
numbered afresh), and the source's latest observation is judged again at once. A fault of the
server (audit records or the recording cannot be written) pauses the call while it lasts (a
recording fault only alerts when the policy says so) and keeps the security check from passing;
once cleared, the call resumes after the usual recheck.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policies.config import PolicyConfig
from policies.decisions import Alert, AlertRepeated, Decision, State
from policies.events import (
    CaptureAttempt,
    FaultCleared,
    FaultRaised,
    PauseCarriedOver,
    StaffConfirmIdentity,
    StaffEnd,
    StaffPause,
    StaffRejectIdentity,
    StaffResume,
)
from policies.ledger import Ledger, Source
from policies.reasons import Reason


class Interventions:
    _config: PolicyConfig
    _ledger: Ledger
    _state: State
    _now: float
    _out: list[Decision]
    _awaiting_approval: bool
    _recheck_passed: bool
    _capture_episode: tuple[str, int] | None  # (source, attempts) while paused for one

    if TYPE_CHECKING:  # the session's own members these handlers use

        def _pause(
            self, reason: Reason, source: str, track: int | None, participant: str | None, detail: str
        ) -> None: ...

        def _resume(self) -> None: ...

        def _end(self, reason: Reason) -> None: ...

        def _judge(self, name: str, src: Source) -> None: ...

        def _update_clean(self) -> None: ...

    def _close_capture_episode(self) -> None:
        """The exact count of a capture-attempt episode's repeats, unless the last one sent it."""
        episode, self._capture_episode = self._capture_episode, None
        if episode is not None and episode[1] > 1 and episode[1] & (episode[1] - 1):
            self._out.append(AlertRepeated(self._now, Reason.CAPTURE_ATTEMPT, episode[0], episode[1]))

    def _on_capture_attempt(self, e: CaptureAttempt) -> None:
        if self._state is State.PAUSED and self._capture_episode is not None:  # a repeat: counted
            source, count = self._capture_episode[0], self._capture_episode[1] + 1
            self._capture_episode = (source, count)
            if not count & (count - 1):
                self._out.append(AlertRepeated(self._now, Reason.CAPTURE_ATTEMPT, source, count))
            return
        src = self._ledger.sources.get(e.source)
        detail = e.detail or "recording or screenshot attempt"
        self._pause(Reason.CAPTURE_ATTEMPT, e.source, None, src.participant if src else None, detail)
        self._capture_episode = (e.source, 1)

    def _on_staff_pause(self, e: StaffPause) -> None:
        detail = f"{e.note} (by {e.staff})" if e.staff else e.note
        self._pause(Reason.STAFF_PAUSE, "", None, None, detail)

    def _on_staff_resume(self, e: StaffResume) -> None:
        self._awaiting_approval = False
        if self._recheck_passed:
            self._resume()

    def _on_staff_end(self, e: StaffEnd) -> None:
        self._end(Reason.STAFF_END)

    def _on_staff_identity(self, e: StaffConfirmIdentity | StaffRejectIdentity) -> None:
        participant = e.participant if isinstance(e, StaffConfirmIdentity) else None
        self._ledger.overrides[(e.source, e.track)] = participant
        src = self._ledger.sources[e.source]  # connected: the session refuses a verdict otherwise
        if src.latest is not None:
            self._judge(e.source, src)

    def _on_fault_raised(self, e: FaultRaised) -> None:
        known = self._ledger.faults.get(e.reason)
        blocking = e.reason is Reason.STORE_ERROR or self._config.recording_error_pauses
        self._ledger.faults[e.reason] = (e.detail, blocking)
        if known is None:
            if blocking and self._state is not State.WAITING:
                self._pause(e.reason, "", None, None, e.detail)
            else:
                self._out.append(Alert(self._now, e.reason, "", None, None, e.detail, False))
        self._update_clean()

    def _on_fault_cleared(self, e: FaultCleared) -> None:
        if self._ledger.faults.pop(e.reason, None) is not None:
            self._update_clean()

    def _on_pause_carried_over(self, e: PauseCarriedOver) -> None:
        for reason in e.reasons:
            if reason in self._config.staff_approval_reasons:
                detail = f"held over from before a restart: {e.detail}" if e.detail else "held over a restart"
                self._pause(reason, "", None, None, detail)

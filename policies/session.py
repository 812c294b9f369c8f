"""The call's state machine: events stamped with media time in, decisions out.

Theory of operation
-------------------
States: ``waiting`` (before the booked start) -> ``verifying`` (from t = 0 until the first security
check passes) -> ``live`` <-> ``paused`` -> ``ended`` (terminal, from any state).

Time is an input. Every event carries ``t``, media seconds since the booked start; the session's
clock is ``max(previous now, event.t)``, so a slightly late event from another source never moves
time back, and the core never reads a clock. That is what lets a live call and the replay of its
recording reach the same decisions at the same times. Before the transition table is consulted,
every event first *advances the clock*: everything that was due between the previous ``now`` and
the event's time fires in time order, each stamped with its own due time (the call starting at 0,
``time_up`` at the booked duration, analysis time-outs, warnings, pauses, clears, passed
rechecks). Ties fire in a fixed order (start, end, analysis time-outs, stale frames, a side gone,
clears, warnings, pauses, rechecks). Then the table ``TRANSITIONS[(state, event type)]`` names
the handler, ``IGNORE`` or ``ILLEGAL``; an illegal pair raises :class:`IllegalTransition` and the
session is rolled back to exactly where it was (legality is judged after the advance, so a
``StaffResume`` is legal if the call has paused by the event's time). After the handler, whatever
it made due at ``now`` fires too. Two pure queries serve a live caller: :meth:`Session.next_due`
(when to tick so that a window fires exactly when it ends) and :meth:`Session.firm_pause_due` (a
due pause that no frame still in analysis can prevent, so the caller need not hold its clock back
for that frame).

Findings are kept per (source, reason) in the session's ledger (policies/ledger.py: sources,
findings, identity verdicts, the security check) and computed from each Observation of that source
(policies/findings.py): ``unbooked_face``, ``too_many_faces``, ``face_not_visible``, ``no_face``,
``poor_lighting``. A finding starts when first seen and clears only after it has been absent from
that source's observations for ``clear_after_s`` (one-frame blinks neither start nor reset
anything). A finding that lasts its warn window gives the participant one ``WarningIssued`` (plain-word
guidance) and a ``WarningCleared`` when it clears; one that lasts its pause window pauses the call
(``verifying``/``live`` -> ``paused``) with an ``Alert`` for staff, or, while already paused, adds its
reason and alerts. Each finding episode fires its warning and its pause at most once. An alert
names the source, the face track behind the finding and a participant: the matched person whose
face it is, else the device's owner (an unbooked face has no participant of its own). Pauses never
fire before t = 0: a finding seen while waiting pauses at the start if it lasted long enough.

What else pauses: ``CaptureAttempt`` and ``StaffPause`` at once; ``analysis_error`` when an
analysed, connected source (joined with ``analysed=True``, or any source that has sent an
Observation) has delivered no Observation for ``analysis_timeout_s`` (counted from its last
Observation or its join, never from before t = 0). ``AnalysisFailed`` is only noted (its detail
goes in the alert): the time-out is the rule, so a one-off failure does not pause. A
``ParticipantLeft`` device stops being expected and takes its findings with it; a side (visitors or
prisoner) that had joined and has no device left for ``reconnect_grace_s`` becomes a ``no_face``
finding of that side (source ``side:visitor`` / ``side:prisoner``), counted from the leave, so it
pauses ``no_face_pause_after_s`` after the leave (or at the end of the grace, if later); a rejoin
within the grace changes nothing, a later one clears it. A source first heard of through an
Observation (replay sends no joins) or an AnalysisFailed (taken as a visitor device) counts as
joined and analysed; reports from a device after it has left are ignored until it rejoins.

What resumes: the security check is *clean* when there is at least one analysed, connected source
and every one has a fresh latest Observation (since it (re)joined, less than
``recheck_fresh_within_s`` old, so a check never passes on stale frames) showing >= 1 face, every
face MATCH to a person booked on that side and fully visible, no more faces than booked for that
side and nobody without a face. Verifying goes live once the check has been clean
continuously for ``recheck_clean_for_s``. While paused, the same window counted from the latest
pause reason gives ``RecheckPassed``; the call goes live with its reasons cleared unless a reason in
``staff_approval_reasons`` arrived after the latest ``StaffResume`` (``awaiting_staff``); a
``StaffResume`` after a passed recheck (still clean) resumes at once. The call ends at
``duration_s`` (``time_up``) or on ``StaffEnd``; nothing is emitted after ``ended``.

Determinism: the same events give the same decisions; nothing iterates a set, dictionaries keep
insertion order and simultaneous work is ordered by (time, kind, key).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from policies.booking import Booking
from policies.config import PolicyConfig
from policies.decisions import (
    Alert,
    Decision,
    RecheckPassed,
    State,
    StateChanged,
    WarningIssued,
)
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    FaultCleared,
    FaultRaised,
    Observation,
    ParticipantJoined,
    ParticipantLeft,
    PauseCarriedOver,
    Role,
    StaffConfirmIdentity,
    StaffEnd,
    StaffPause,
    StaffRejectIdentity,
    StaffResume,
    Tick,
)
from policies.findings import Culprit, guidance
from policies.interventions import Interventions
from policies.ledger import WHAT, Due, DueWork, Finding, Ledger, side_source
from policies.reasons import FAULT_REASONS, Reason
from policies.watching import Watching


class RefusedEvent(ValueError):
    """An event the session will not apply. The session is left unchanged."""


class InvalidEvent(RefusedEvent):
    """An event that names something the call does not have (a source, a booked person, a fault)."""


class IllegalTransition(RefusedEvent):
    """An event that is not allowed in the session's state."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"{type(event).__name__} at t={event.t:g} is not allowed while the call is {state}")
        self.state = state
        self.event = event


class Rule(Enum):
    IGNORE = "ignore"  # legal, nothing to do beyond advancing the clock
    ILLEGAL = "illegal"  # raises IllegalTransition


IGNORE = Rule.IGNORE
ILLEGAL = Rule.ILLEGAL


class Session(Watching, Interventions):
    """One call's rules. Feed it events in (roughly) time order with :meth:`handle`."""

    def __init__(
        self, config: PolicyConfig, duration_s: float, visitors: tuple[str, ...], prisoner: str | None = None
    ) -> None:
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
        if not visitors:
            raise ValueError("a session needs at least one booked visitor")
        self._config = config
        self._duration = float(duration_s)
        self._visitors = tuple(visitors)
        self._prisoner = prisoner
        self._state = State.WAITING
        self._now = -math.inf
        self._reasons: list[Reason] = []  # active pause reasons, or the end reason
        self._awaiting_approval = False
        self._recheck_from = 0.0
        self._recheck_passed = False
        self._clean_since: float | None = None
        self._ledger = Ledger(self._visitors, prisoner)
        self._capture_episode: tuple[str, int] | None = None  # (source, attempts) while paused for one
        self._out: list[Decision] = []

    @classmethod
    def for_booking(cls, booking: Booking, config: PolicyConfig) -> Session:
        return cls(config, booking.duration_s, booking.visitor_ids, booking.prisoner.id)

    @property
    def state(self) -> State:
        return self._state

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """Why the call is paused (or ended); empty otherwise."""
        return tuple(self._reasons)

    @property
    def now(self) -> float:
        """The session clock: the latest event time seen (-inf before the first event)."""
        return self._now

    @property
    def duration_s(self) -> float:
        return self._duration

    def next_due(self) -> float | None:
        """When the session next has timed work (a window ending, a time-out, a recheck, the
        fixed end): a Tick stamped then makes it fire. None once ended. A pure query."""
        due = self._next_due()
        return None if due is None else due[0]

    def firm_pause_due(self, pending: Mapping[str, float]) -> float | None:
        """The time of the next timed work if it is a pause that no observation still being
        analysed can prevent, else None. ``pending`` maps a source to the media time of its oldest
        frame in analysis. A finding clears only after ``clear_after_s`` without being seen, so a
        frame of its source stamped ``t`` cannot stop a pause due before ``t + clear_after_s``, and
        frames of other sources cannot stop it at all: a caller that holds its clock back for
        frames in analysis may advance it to this time at once. A pure query."""
        due = self._next_due()
        if due is None or due[1] is not Due.PAUSE:
            return None
        at, _, (name, _) = due
        oldest = pending.get(name)
        if oldest is not None and oldest + self._config.clear_after_s <= at:
            return None
        return at

    @property
    def awaiting_staff(self) -> bool:
        """Paused, and a member of staff must approve before the call can resume."""
        return self._state is State.PAUSED and self._awaiting_approval

    def holding(self) -> tuple[tuple[Reason, str], ...]:
        """While paused, what holds the call now, as (reason, source) pairs in the order the
        reasons paused it: each finding that paused it and has not cleared (its source: a device,
        or ``side:<role>``), a fault of the server in force (source ""), and a reason that needs
        staff approval until staff approve (source: the device of a capture attempt, else "").
        Empty when the call is not paused, or when only the security check is left to pass (what a
        participant is told follows this: ``monitor/call/explain.py``). A pure query."""
        if self._state is not State.PAUSED:
            return ()
        held: list[tuple[Reason, str]] = []
        for reason in self._reasons:
            if reason in self._config.staff_approval_reasons:
                episode = self._capture_episode
                source = episode[0] if reason is Reason.CAPTURE_ATTEMPT and episode is not None else ""
                held += [(reason, source)] if self._awaiting_approval else []
            elif reason in self._ledger.faults:
                held.append((reason, ""))
            else:
                findings = self._ledger.findings.items()
                held += [(reason, name) for (name, found), f in findings if found is reason and f.fired]
        return tuple(held)

    def handle(self, event: Event) -> tuple[Decision, ...]:
        """Advance the clock to ``event.t``, apply the event, return the decisions in order."""
        if type(event) not in _EVENT_TYPES:
            raise TypeError(f"not a session event: {event!r}")
        if not math.isfinite(event.t):
            raise ValueError(f"{type(event).__name__}.t must be a finite number of seconds, got {event.t!r}")
        self._check(event)
        saved = copy.deepcopy(self.__dict__) if type(event) in _MAY_BE_ILLEGAL else None
        self._out = []
        self._advance(event.t)
        rule = TRANSITIONS[(self._state, type(event))]
        if rule is ILLEGAL:
            state = self._state
            self.__dict__.update(saved or {})  # saved: every type with an ILLEGAL pair is snapshotted
            raise IllegalTransition(state, event)
        if not isinstance(rule, Rule):
            rule(self, event)
            self._advance(self._now)
        return tuple(self._out)

    def _check(self, event: Event) -> None:
        """Refuse, before anything changes, an event that names what the call does not have."""
        match event:
            case FaultRaised() | FaultCleared() if event.reason not in FAULT_REASONS:
                known = ", ".join(r.value for r in FAULT_REASONS)
                raise InvalidEvent(f"{event.reason} is not a fault (known: {known})")
            case StaffConfirmIdentity() | StaffRejectIdentity() if event.source not in self._ledger.sources:
                raise InvalidEvent(f"no device {event.source!r} on this call")
            case StaffConfirmIdentity() | StaffRejectIdentity() if not self._ledger.connected(event.source):
                raise InvalidEvent(f"device {event.source!r} has left the call; its faces are gone")
            case StaffConfirmIdentity():
                booked = self._ledger.booked_on(self._ledger.sources[event.source].role) or ()
                if event.participant not in booked:
                    raise InvalidEvent(f"{event.participant!r} is not booked on {event.source!r}'s side")

    # -- the clock ---------------------------------------------------------------------------------

    def _advance(self, target: float) -> None:
        while (due := self._next_due()) is not None and due[0] <= target:
            at, kind, key = due
            self._now = max(self._now, at)
            self._fire(kind, key)
        self._now = max(self._now, target)

    def _next_due(self) -> DueWork | None:
        if self._state is State.ENDED:
            return None
        cfg = self._config
        due: list[DueWork] = [(self._duration, Due.TIME_UP, ("", ""))]
        if self._state is State.WAITING:
            due.append((0.0, Due.START, ("", "")))
        due += self._ledger.due(cfg)
        if self._clean_since is not None:
            if self._state is State.VERIFYING:
                due.append((self._clean_since + cfg.recheck_clean_for_s, Due.RECHECK, ("", "")))
            elif self._state is State.PAUSED and not self._recheck_passed:
                start = max(self._clean_since, self._recheck_from)
                due.append((start + cfg.recheck_clean_for_s, Due.RECHECK, ("", "")))
        return min(due)

    def _fire(self, kind: Due, key: tuple[str, str]) -> None:
        name, reason_value = key
        if kind is Due.START:
            self._change(State.VERIFYING)
        elif kind is Due.TIME_UP:
            self._end(Reason.TIME_UP)
        elif kind is Due.STALL:
            src = self._ledger.sources[name]
            src.stalled = True
            culprit = Culprit(None, src.participant, src.failure)
            timeout = self._config.analysis_timeout_s
            finding = Finding(self._now - timeout, None, timeout, culprit)  # due now: it lasted the time-out
            self._ledger.findings[(name, Reason.ANALYSIS_ERROR)] = finding
            self._update_clean()
        elif kind is Due.STALE:
            self._ledger.sources[name].stale = True
            self._update_clean()
        elif kind is Due.SIDE_GONE:
            role = Role(name)
            culprit = Culprit(None, None, "no device connected")
            pause_after = self._config.no_face_pause_after_s
            self._ledger.findings[(side_source(role), Reason.NO_FACE)] = Finding(
                self._ledger.side_left[role], None, pause_after, culprit
            )
        elif kind is Due.CLEAR:
            self._drop_finding((name, Reason(reason_value)))
        elif kind is Due.WARN:
            finding = self._ledger.findings[(name, Reason(reason_value))]
            finding.warned = True
            text = guidance(Reason(reason_value), finding.culprit)
            self._out.append(WarningIssued(self._now, Reason(reason_value), name, text))
        elif kind is Due.PAUSE:
            self._fire_pause(name, Reason(reason_value))
        else:
            self._recheck_due()

    def _fire_pause(self, name: str, reason: Reason) -> None:
        finding = self._ledger.findings[(name, reason)]
        finding.fired = True
        culprit = finding.culprit
        what = WHAT[reason] + (f" ({culprit.kind})" if culprit.kind else "")
        src = self._ledger.sources.get(name)
        participant = culprit.participant or (src.participant if src else None)
        detail = f"{what}, for {self._now - finding.first_seen:.1f} s"
        self._pause(reason, name, culprit.track, participant, detail)

    def _recheck_due(self) -> None:
        if self._state is State.VERIFYING:
            self._change(State.LIVE)
            return
        self._recheck_passed = True
        self._out.append(RecheckPassed(self._now, awaiting_staff=self._awaiting_approval))
        if not self._awaiting_approval:
            self._resume()

    # -- state changes -----------------------------------------------------------------------------

    def _change(self, state: State) -> None:
        self._out.append(StateChanged(self._now, state, self._state, tuple(self._reasons)))
        self._state = state

    def _pause(
        self, reason: Reason, source: str, track: int | None, participant: str | None, detail: str
    ) -> None:
        if self._state is State.PAUSED:
            if reason not in self._reasons:
                self._reasons.append(reason)
        else:
            self._reasons = [reason]
            self._awaiting_approval = False
            self._change(State.PAUSED)
        needs_staff = reason in self._config.staff_approval_reasons
        self._awaiting_approval = self._awaiting_approval or needs_staff
        self._recheck_from = self._now
        self._recheck_passed = False
        self._out.append(Alert(self._now, reason, source, track, participant, detail, needs_staff))

    def _resume(self) -> None:
        self._close_capture_episode()
        self._reasons = []
        self._awaiting_approval = False
        self._change(State.LIVE)

    def _end(self, reason: Reason) -> None:
        self._close_capture_episode()
        self._reasons = [reason]
        self._change(State.ENDED)


Handler = Callable[[Session, Any], None]
_S = Session
W, V, L, P, E = State.WAITING, State.VERIFYING, State.LIVE, State.PAUSED, State.ENDED

# (state, event type) -> handler | IGNORE | ILLEGAL. Every pair is listed. The clock has already
# advanced when this is consulted, so a Tick needs no handler: time passing is the advance itself.
TRANSITIONS: dict[tuple[State, type], Handler | Rule] = {
    (W, Tick): IGNORE, (V, Tick): IGNORE, (L, Tick): IGNORE, (P, Tick): IGNORE, (E, Tick): IGNORE,
    (W, Observation): _S._on_observation, (V, Observation): _S._on_observation,
    (L, Observation): _S._on_observation, (P, Observation): _S._on_observation, (E, Observation): IGNORE,
    (W, AnalysisFailed): _S._on_analysis_failed, (V, AnalysisFailed): _S._on_analysis_failed,
    (L, AnalysisFailed): _S._on_analysis_failed, (P, AnalysisFailed): _S._on_analysis_failed,
    (E, AnalysisFailed): IGNORE,
    (W, CaptureAttempt): ILLEGAL, (V, CaptureAttempt): _S._on_capture_attempt,
    (L, CaptureAttempt): _S._on_capture_attempt, (P, CaptureAttempt): _S._on_capture_attempt,
    (E, CaptureAttempt): IGNORE,
    (W, StaffPause): ILLEGAL, (V, StaffPause): _S._on_staff_pause, (L, StaffPause): _S._on_staff_pause,
    (P, StaffPause): _S._on_staff_pause, (E, StaffPause): ILLEGAL,
    (W, StaffResume): ILLEGAL, (V, StaffResume): ILLEGAL, (L, StaffResume): ILLEGAL,
    (P, StaffResume): _S._on_staff_resume, (E, StaffResume): ILLEGAL,
    (W, StaffEnd): _S._on_staff_end, (V, StaffEnd): _S._on_staff_end, (L, StaffEnd): _S._on_staff_end,
    (P, StaffEnd): _S._on_staff_end, (E, StaffEnd): ILLEGAL,
    (W, ParticipantJoined): _S._on_joined, (V, ParticipantJoined): _S._on_joined,
    (L, ParticipantJoined): _S._on_joined, (P, ParticipantJoined): _S._on_joined,
    (E, ParticipantJoined): IGNORE,
    (W, ParticipantLeft): _S._on_left, (V, ParticipantLeft): _S._on_left, (L, ParticipantLeft): _S._on_left,
    (P, ParticipantLeft): _S._on_left, (E, ParticipantLeft): IGNORE,
    (W, StaffConfirmIdentity): ILLEGAL, (V, StaffConfirmIdentity): _S._on_staff_identity,
    (L, StaffConfirmIdentity): _S._on_staff_identity, (P, StaffConfirmIdentity): _S._on_staff_identity,
    (E, StaffConfirmIdentity): ILLEGAL,
    (W, StaffRejectIdentity): ILLEGAL, (V, StaffRejectIdentity): _S._on_staff_identity,
    (L, StaffRejectIdentity): _S._on_staff_identity, (P, StaffRejectIdentity): _S._on_staff_identity,
    (E, StaffRejectIdentity): ILLEGAL,
    (W, FaultRaised): _S._on_fault_raised, (V, FaultRaised): _S._on_fault_raised,
    (L, FaultRaised): _S._on_fault_raised, (P, FaultRaised): _S._on_fault_raised, (E, FaultRaised): IGNORE,
    (W, FaultCleared): _S._on_fault_cleared, (V, FaultCleared): _S._on_fault_cleared,
    (L, FaultCleared): _S._on_fault_cleared, (P, FaultCleared): _S._on_fault_cleared,
    (E, FaultCleared): IGNORE,
    (W, PauseCarriedOver): ILLEGAL, (V, PauseCarriedOver): _S._on_pause_carried_over,
    (L, PauseCarriedOver): _S._on_pause_carried_over, (P, PauseCarriedOver): _S._on_pause_carried_over,
    (E, PauseCarriedOver): IGNORE,
}  # fmt: skip

_EVENT_TYPES = frozenset(event_type for _, event_type in TRANSITIONS)
_MAY_BE_ILLEGAL = frozenset(event_type for (_, event_type), rule in TRANSITIONS.items() if rule is ILLEGAL)

__all__ = [
    "IGNORE",
    "ILLEGAL",
    "TRANSITIONS",
    "IllegalTransition",
    "InvalidEvent",
    "RefusedEvent",
    "Rule",
    "Session",
    "side_source",
]

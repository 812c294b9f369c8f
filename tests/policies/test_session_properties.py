"""Invariants over random event sequences (hypothesis): whatever happens, these hold."""

from __future__ import annotations

import random
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st
from policy_helpers import CONFIG

from policies.decisions import Decision, State, StateChanged
from policies.events import (
    AnalysisFailed,
    CaptureAttempt,
    Event,
    Face,
    Lighting,
    Observation,
    ParticipantJoined,
    ParticipantLeft,
    Role,
    StaffEnd,
    StaffPause,
    StaffResume,
    Tick,
    Verdict,
    Visibility,
)
from policies.reasons import Reason
from policies.session import IllegalTransition, Session

DURATION = 60.0
T = TypeVar("T")
SOURCES = {"dev1": Role.VISITOR, "dev2": Role.VISITOR, "cell": Role.PRISONER}


def weighted(rnd: random.Random, table: list[tuple[int, T]]) -> T:
    return rnd.choices([value for _, value in table], weights=[w for w, _ in table])[0]


def random_face(rnd: random.Random) -> Face:
    return Face(
        track=rnd.randint(1, 4),
        verdict=rnd.choice(list(Verdict)),
        participant=rnd.choice(["v1", "v2", "P1", None]),
        distance=rnd.choice([None, round(rnd.random(), 3)]),
        visibility=weighted(
            rnd, [(4, Visibility.FULL), (1, Visibility.PARTIAL), (1, Visibility.TURNED_AWAY)]
        ),
        lighting=weighted(rnd, [(8, Lighting.OK), *((1, x) for x in Lighting if x is not Lighting.OK)]),
    )


@st.composite
def scripts(draw: st.DrawFn) -> list[Event]:
    """A call's worth of events. Weighted choices come from a seeded Random: hypothesis's own
    integers and Random favour extreme values, which ended nearly every call at once. Hypothesis
    still picks the seed and shrinks the length."""
    rnd = random.Random(draw(st.integers(0, 2**32)))
    t = rnd.choice([-5.0, -0.5, 0.0, 1.0])
    sources = rnd.choice([["dev1"], ["dev1", "cell"], ["dev1", "cell", "dev2"]])
    mess = rnd.choice([0.0, 0.02, 0.05, 0.2])  # share of frames with random faces
    # sometimes someone unbooked steps into one camera's view for a while (and may blink out)
    intruder_on = rnd.choice(sources) if rnd.random() < 0.6 else None
    intruder_from = rnd.uniform(-1.0, 15.0)
    intruder_until = intruder_from + rnd.choice([0.3, 0.9, 1.5, 4.0, 30.0])
    events: list[Event] = []
    for _ in range(draw(st.integers(1, 250))):
        # mostly frame-rate steps, sometimes stalls and long jumps; some events arrive late
        t += weighted(rnd, [(85, 0.1), (5, 0.0), (4, 0.6), (3, 1.5), (2, 6.0), (1, 25.0)])
        at = round(t + weighted(rnd, [(8, 0.0), (1, -0.05), (1, -1.0)]), 3)
        source = rnd.choice(sources)
        kind = weighted(
            rnd,
            [
                (300, Observation),
                (30, Tick),
                (6, ParticipantJoined),
                (3, ParticipantLeft),
                (3, AnalysisFailed),
                (2, CaptureAttempt),
                (2, StaffPause),
                (15, StaffResume),
                (1, StaffEnd),
            ],
        )
        event: Event
        if kind is Observation:
            # mostly the booked person, clean, so calls do go live; sometimes anything at all
            if rnd.random() < mess:
                found = tuple(random_face(rnd) for _ in range(rnd.randint(0, 3)))
                event = Observation(at, source, SOURCES[source], found, rnd.randint(0, 1))
            else:
                found = (Face(1, Verdict.MATCH, "P1" if source == "cell" else "v1", 0.3),)
                if source == intruder_on and intruder_from <= at < intruder_until and rnd.random() < 0.9:
                    found += (Face(7, Verdict.UNBOOKED, None, 0.8),)
                event = Observation(at, source, SOURCES[source], found)
        elif kind is ParticipantJoined:
            event = ParticipantJoined(at, source, SOURCES[source], "v1", rnd.random() < 0.8)
        elif kind in (ParticipantLeft, CaptureAttempt):
            event = kind(at, source)
        elif kind is AnalysisFailed:
            event = AnalysisFailed(at, source, "boom")
        else:
            event = kind(at)
        events.append(event)
    return events


Step = tuple[Event, tuple[Decision, ...] | str, State, float]


def run(events: list[Event]) -> list[Step]:
    """Feed every event; illegal ones are recorded by message (and must leave no trace)."""
    s = Session(CONFIG, DURATION, ("v1", "v2"), "P1")
    steps: list[Step] = []
    for event in events:
        try:
            result: tuple[Decision, ...] | str = s.handle(event)
        except IllegalTransition as exc:
            result = str(exc)
        steps.append((event, result, s.state, s.now))
    return steps


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_same_events_same_decisions(events: list[Event]) -> None:
    assert run(events) == run(events)


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_the_call_ends_at_its_duration_and_nothing_follows(events: list[Event]) -> None:
    ended_at: float | None = None
    for _event, result, state, now in run(events):
        if ended_at is not None:
            assert result == () or isinstance(result, str)
            continue
        if isinstance(result, str):
            continue
        for d in result:
            if isinstance(d, StateChanged) and d.state is State.ENDED:
                ended_at = d.t
                assert d.t <= DURATION
                assert d.reasons in ((Reason.STAFF_END,), (Reason.TIME_UP,))
                assert d.reasons != (Reason.TIME_UP,) or d.t == DURATION
                assert d is result[-1]  # nothing after ended, even within one step
        if now >= DURATION:
            assert state is State.ENDED and ended_at is not None


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_decisions_are_ordered_and_consistent_with_the_state(events: list[Event]) -> None:
    last_t = -float("inf")
    state = State.WAITING
    for _event, result, now_state, now in run(events):
        if isinstance(result, str):
            assert now_state is state  # an illegal event changed nothing
            continue
        for d in result:
            assert last_t <= d.t <= now
            last_t = d.t
            if isinstance(d, StateChanged):
                assert d.previous is state and d.state is not state
                assert bool(d.reasons) == (d.state in (State.PAUSED, State.ENDED))
                state = d.state
        assert now_state is state


@settings(max_examples=300, deadline=None)
@given(scripts())
def test_never_live_while_an_unbooked_face_is_confirmed(events: list[Event]) -> None:
    window = CONFIG.unbooked_face_pause_after_s
    run_start: dict[str, float] = {}  # source -> when its current run of frames with an unbooked face began
    left: set[str] = set()
    for event, result, state, now in run(events):
        if isinstance(result, str):
            continue
        if isinstance(event, ParticipantLeft):
            left.add(event.source)
            run_start.pop(event.source, None)
        elif isinstance(event, ParticipantJoined):
            left.discard(event.source)
        elif isinstance(event, Observation) and event.source not in left:
            if any(f.verdict is Verdict.UNBOOKED for f in event.faces):
                run_start.setdefault(event.source, now)
            else:
                run_start.pop(event.source, None)
        confirmed = [source for source, start in run_start.items() if now - start >= window]
        assert not (confirmed and state is State.LIVE), (confirmed, now)


@settings(max_examples=200, deadline=None)
@given(scripts())
def test_an_illegal_event_has_no_effect_at_all(events: list[Event]) -> None:
    steps = run(events)
    legal = [event for event, result, _, _ in steps if not isinstance(result, str)]
    assert [r for _, r, _, _ in run(legal)] == [r for _, r, _, _ in steps if not isinstance(r, str)]

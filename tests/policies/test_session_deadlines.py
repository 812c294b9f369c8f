"""The session's pure deadline queries: next_due and firm_pause_due (what a live caller ticks on)."""

from __future__ import annotations

from policy_helpers import (
    DURATION,
    ended_session,
    feed,
    frames,
    live_session,
    match,
    obs,
    session,
    timeline,
    unbooked,
    verifying_session,
)

from policies.decisions import State
from policies.events import Tick


def test_next_due_is_the_end_of_the_earliest_window_and_asking_changes_nothing() -> None:
    s = live_session()  # analysis time-out of dev1 at 6.0, its latest frame goes stale at 2.0
    assert s.next_due() == 2.0
    feed(s, frames(1.5, 2.0, match()))
    assert s.next_due() == 2.9  # the frame at 1.9 goes stale at 2.9
    feed(s, [obs(2.0, match(), unbooked())])
    assert s.next_due() == 3.0  # stale at 3.0 (frame at 2.0) ties with the pause at 3.0
    assert s.next_due() == 3.0 and s.now == 2.0 and s.state is State.LIVE


def test_next_due_is_none_once_ended_and_the_start_before_it() -> None:
    assert ended_session().next_due() is None
    s = session()
    assert s.next_due() == 0.0
    s.handle(Tick(-5.0))
    assert s.next_due() == 0.0


def test_a_pause_is_firm_when_no_frame_of_its_source_could_clear_it_in_time() -> None:
    s = live_session()
    feed(s, frames(2.0, 2.6, match(), unbooked()))  # seen from 2.0: pause due at 3.0
    feed(s, [Tick(2.95)])  # the latest frame (2.5) goes stale at 3.5: the pause is next
    assert s.next_due() == 3.0
    assert s.firm_pause_due({}) == 3.0  # nothing in analysis
    assert s.firm_pause_due({"dev2": 2.0}) == 3.0  # another source cannot clear dev1's finding
    assert s.firm_pause_due({"dev1": 2.6}) == 3.0  # absent from 2.6 would clear at 3.1: too late
    assert s.firm_pause_due({"dev1": 2.5}) is None  # absent from 2.5 would clear at 3.0: not firm
    out = feed(s, [Tick(3.0)])
    assert timeline(out)[0] == (3.0, "state", "paused", ("unbooked_face",))


def test_no_firm_pause_when_the_next_work_is_something_else() -> None:
    s = verifying_session()  # nothing but time-outs due
    assert s.firm_pause_due({}) is None
    assert ended_session().firm_pause_due({}) is None
    s = live_session()
    feed(s, [obs(2.0, match(), unbooked()), Tick(DURATION - 0.5)])  # the finding cleared long ago
    assert s.next_due() == DURATION and s.firm_pause_due({}) is None  # next: the fixed end

"""The console's reading of a paused call's way back to live (``board.resume_route``), checked
against the policy core itself: the records are what a real session decided, as the audit log
holds them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from monitor.console.board import resume_route
from monitor.record.timeline import decision_record
from monitor.store.audit import AuditRecord
from policies.config import load_policy
from policies.decisions import State
from policies.events import CaptureAttempt, Event, Face, Observation, StaffPause, StaffResume, Verdict
from policies.session import Session

MATCH = Face(1, Verdict.MATCH, "v1", 0.3)
UNBOOKED = Face(2, Verdict.UNBOOKED, None, 0.7)


def frames(start: float, stop: float, *faces: Face) -> list[Event]:
    count = math.ceil((stop - start) / 0.1 - 1e-9)
    return [Observation(round(start + i * 0.1, 3), "dev1", faces=faces) for i in range(count)]


class Log:
    """A session and the audit records its decisions (and staff approvals) would leave."""

    def __init__(self) -> None:
        self.session = Session(load_policy(), 1800.0, ("v1",), None)
        self.records: list[AuditRecord] = []

    def add(self, kind: str, data: dict[str, Any]) -> None:
        self.records.append(
            AuditRecord(len(self.records) + 1, 0.0, "HMP Example", "c1", kind, "policy", data, None, "", "")
        )

    def feed(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, StaffResume):  # the console writes the action before the call acts
                self.add("staff_action", {"action": "approve_resume"})
            for decision in self.session.handle(event):
                record = decision_record(decision)
                self.add(record.pop("kind"), record)

    def route(self) -> str | None:
        route = resume_route(self.records)
        # the core's own view: paused or not, and whether staff must still approve
        assert (route is None) == (self.session.state is not State.PAUSED)
        assert (route in ("needs_staff", "awaiting_staff")) == self.session.awaiting_staff
        return route


def test_each_pause_says_how_it_resumes() -> None:
    log = Log()
    log.feed(frames(0.0, 3.0, MATCH))
    assert log.session.state is State.LIVE and log.route() is None
    log.feed(frames(3.0, 4.5, MATCH, UNBOOKED))  # an unbooked face: paused, the check alone resumes
    assert log.route() == "automatic"
    log.feed([CaptureAttempt(4.5, "dev1")])  # a recording attempt on top needs staff
    assert log.route() == "needs_staff"
    log.feed(frames(4.6, 7.0, MATCH))  # the check passes; staff still must approve
    assert log.route() == "awaiting_staff"
    log.feed([StaffResume(7.05, "alice")])
    assert log.session.state is State.LIVE and log.route() is None
    log.feed([StaffPause(8.0, "shouting", "alice")])
    assert log.route() == "needs_staff"
    log.feed([StaffResume(8.1, "alice")])  # approved before the check passed
    assert log.route() == "automatic"
    log.feed(frames(8.2, 11.0, MATCH))
    assert log.session.state is State.LIVE and log.route() is None


@pytest.mark.parametrize("reason_event", [CaptureAttempt(4.0, "dev1"), StaffPause(4.0, "note")])
def test_a_new_reason_after_an_approval_needs_another(reason_event: Event) -> None:
    log = Log()
    log.feed([*frames(0.0, 3.0, MATCH), StaffPause(3.0, "first"), StaffResume(3.5)])
    assert log.route() == "automatic"
    log.feed([reason_event])
    assert log.route() == "needs_staff"

"""What a call's records say about its pause, read in order: the one reading of them that the
console (how a paused call can resume) and a rebuilt call (what it must carry over a restart)
share.

The records are the call's audit records (``kind`` and ``data``: the timeline records of its
decisions, as ``monitor.record.timeline`` writes them, and the console's ``staff_action`` records),
or the same records as they are published on the hub. :class:`HeldPause` mirrors the policy core
(``policies/session.py``): a pause starts with a ``state`` record into ``paused``, whose reasons
that the policy lists in ``staff_approval_reasons`` (when given) need staff; every ``alert`` while
paused restarts the security check and, with ``needs_staff``, adds a reason only a member of staff
can release (the pause's own alert says so too, but a server killed between the two commits
leaves only the state record); a ``recheck`` record says the check passed; an ``approve_resume`` staff action
releases every reason that needed staff so far. A call a member of staff ended (the ``end`` action,
or an ``ended`` state) stays ended.

When the call's server or relay worker restarts, the call is rebuilt with a fresh session: the
reasons still needing staff are carried over (:class:`CarriedOver`, applied as
``policies.events.PauseCarriedOver``), so a restart never releases a call held for staff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from policies.reasons import Reason

ResumeRoute = Literal["automatic", "needs_staff", "awaiting_staff"]


@dataclass(frozen=True, slots=True)
class CarriedOver:
    """What a rebuilt call takes over from before a restart: the pause reasons that still need a
    staff approval, or that staff ended it (its end may not have been recorded before the restart)."""

    reasons: tuple[Reason, ...] = ()
    ended: bool = False
    detail: str = ""  # what restarted (for the alert)

    def __bool__(self) -> bool:
        return bool(self.reasons) or self.ended


class HeldPause:
    """Reads a call's records (:meth:`see`, in order) and says where its pause stands.
    ``staff_reasons``: the policy's ``staff_approval_reasons`` (values), read from a pause's state
    record (without them only the alerts say which reasons need staff)."""

    def __init__(self, staff_reasons: Iterable[str] = ()) -> None:
        self.staff_reasons = frozenset(str(r) for r in staff_reasons)
        self.paused = False
        self.ended = False
        self.needs_staff: list[str] = []  # reasons (values) that need a staff approval not given yet
        self.passed = False  # the security check passed since the latest reason

    def see(self, kind: str, data: Mapping[str, Any]) -> None:
        """One more record of the call (a record of another kind changes nothing)."""
        if kind == "state":
            was, state = self.paused, data.get("state")
            self.paused = state == "paused"
            if self.paused and not was:
                self.needs_staff, self.passed = [], False
                reasons = data.get("reasons") or []
                self.needs_staff += [str(r) for r in reasons if str(r) in self.staff_reasons]
            if not self.paused:
                self.needs_staff = []
            self.ended = self.ended or state == "ended"
        elif kind == "alert" and self.paused:
            reason = str(data.get("reason") or "")
            if data.get("needs_staff") and reason not in self.needs_staff:
                self.needs_staff.append(reason)
            self.passed = False
        elif kind == "recheck" and self.paused and data.get("passed"):
            self.passed = True
        elif kind == "staff_action" and data.get("action") == "approve_resume":
            self.needs_staff = []
        elif kind == "staff_action" and data.get("action") == "end":
            self.ended = True

    def see_all(self, records: Iterable[Any]) -> HeldPause:
        """Every record (objects with ``kind`` and ``data``, e.g. ``AuditRecord``), in order."""
        for record in records:
            self.see(record.kind, record.data)
        return self

    @property
    def route(self) -> ResumeRoute | None:
        """How the paused call can go live again (None when it is not paused):

        - ``automatic``: only the security check; staff approval is neither needed nor possible;
        - ``needs_staff``: a reason needs staff approval and the check has not passed yet (staff
          may approve now: the call then resumes when the check passes);
        - ``awaiting_staff``: the check passed; the call resumes when staff approve."""
        if not self.paused:
            return None
        if self.needs_staff:
            return "awaiting_staff" if self.passed else "needs_staff"
        return "automatic"

    def carried(self, detail: str) -> CarriedOver:
        """What a call rebuilt now must take over (``detail``: what restarted)."""
        reasons = []
        for value in self.needs_staff:
            try:
                reasons.append(Reason(value))
            except ValueError:  # a record from a newer vocabulary: it still needs staff
                reasons.append(Reason.STAFF_PAUSE)
        held = tuple(dict.fromkeys(reasons)) if self.paused else ()
        return CarriedOver(held, self.ended, detail)


def held_pause(records: Iterable[Any], staff_reasons: Iterable[str] = ()) -> HeldPause:
    """The pause a call's records (``AuditRecord`` s, oldest first) describe."""
    return HeldPause(staff_reasons).see_all(records)


__all__ = ["CarriedOver", "HeldPause", "ResumeRoute", "held_pause"]

"""What the devices and their analysis report to a call: joins and leaves, observations, failures.

These are the session's handlers for those events (named in ``TRANSITIONS``, policies/session.py);
:class:`Watching` is a part of :class:`~policies.session.Session` and keeps the facts in its
ledger (policies/ledger.py). Each observation is judged with staff's identity verdicts in place
(:meth:`Ledger.judged`): a finding starts when first seen, its ``absent_since`` is set when it is
no longer seen, and the security check is recomputed. A device that leaves takes its findings and
its face tracks' verdicts with it; a side with no device left is noted for the grace window.
"""

from __future__ import annotations

from policies.config import PolicyConfig
from policies.decisions import Decision, State, WarningCleared
from policies.events import AnalysisFailed, Observation, ParticipantJoined, ParticipantLeft, Role
from policies.findings import findings_in
from policies.ledger import Finding, Key, Ledger, Source, side_source
from policies.reasons import OBSERVED_REASONS, Reason

_REASON_RANK = {reason: rank for rank, reason in enumerate(Reason)}


class Watching:
    _config: PolicyConfig
    _ledger: Ledger
    _state: State
    _now: float
    _out: list[Decision]
    _clean_since: float | None
    _recheck_passed: bool

    # -- findings and the security check -----------------------------------------------------------

    def _drop_finding(self, key: Key) -> None:
        finding = self._ledger.findings.pop(key)
        if finding.warned:
            self._out.append(WarningCleared(self._now, key[1], key[0]))

    def _update_clean(self) -> None:
        if not self._ledger.is_clean():
            self._clean_since = None
            self._recheck_passed = False
        elif self._clean_since is None:
            self._clean_since = self._now

    def _register(self, name: str, role: Role, participant: str | None, analysed: bool) -> Source:
        return self._ledger.register(name, role, participant, analysed, self._now)

    def _refresh_sides(self) -> None:
        for role in self._ledger.sides_joined:
            if any(s.connected and s.role is role for s in self._ledger.sources.values()):
                self._ledger.side_left.pop(role, None)
                if (side_source(role), Reason.NO_FACE) in self._ledger.findings:
                    self._drop_finding((side_source(role), Reason.NO_FACE))
            elif role not in self._ledger.side_left:
                self._ledger.side_left[role] = self._now

    # -- event handlers (named in TRANSITIONS) -----------------------------------------------------

    def _on_observation(self, e: Observation) -> None:
        src = self._ledger.sources.get(e.source)
        if src is None:
            src = self._register(e.source, e.role, None, analysed=True)
            self._refresh_sides()
        elif not src.connected:
            return  # a late frame from a device that has left
        src.analysed = True
        src.latest = e
        src.last_seen = self._now
        src.stale = False
        if src.stalled:
            src.stalled = False
            self._drop_finding((e.source, Reason.ANALYSIS_ERROR))
        self._judge(e.source, src)

    def _judge(self, name: str, src: Source) -> None:
        """Update the findings of ``name`` from its latest observation, as staff's verdicts make it."""
        assert src.latest is not None
        obs = self._ledger.judged(src.latest)
        self._out += self._ledger.note_identities(obs, self._now)
        booked = self._ledger.booked_on(src.role)
        found = findings_in(obs, 1 if booked is None else len(booked))
        cfg = self._config
        for reason in OBSERVED_REASONS:
            finding = self._ledger.findings.get((name, reason))
            if reason in found:
                if finding is None:
                    self._ledger.findings[(name, reason)] = Finding(
                        self._now, cfg.warn_after(reason), cfg.pause_after(reason), found[reason]
                    )
                else:
                    finding.absent_since = None
                    finding.culprit = found[reason]
            elif finding is not None and finding.absent_since is None:
                finding.absent_since = self._now
        self._update_clean()

    def _on_analysis_failed(self, e: AnalysisFailed) -> None:
        src = self._ledger.sources.get(e.source)
        if src is None:
            src = self._register(e.source, Role.VISITOR, None, analysed=True)
            self._refresh_sides()
        elif not src.connected:
            return
        src.analysed = True
        src.failure = e.detail
        self._update_clean()

    def _on_joined(self, e: ParticipantJoined) -> None:
        src = self._ledger.sources.get(e.source)
        if src is None or not src.connected:
            self._register(e.source, e.role, e.participant or None, e.analysed)
        else:  # a repeated join of a connected device updates what we know about it
            src.role, src.participant, src.analysed = e.role, e.participant or None, e.analysed
            if e.role not in self._ledger.sides_joined:
                self._ledger.sides_joined.append(e.role)
        self._refresh_sides()
        self._update_clean()

    def _on_left(self, e: ParticipantLeft) -> None:
        src = self._ledger.sources.get(e.source)
        if src is None or not src.connected:
            return
        src.connected = False
        src.latest = None
        src.stalled = False
        src.stale = False
        mine = sorted(
            (k for k in self._ledger.findings if k[0] == e.source), key=lambda k: _REASON_RANK[k[1]]
        )
        for key in mine:
            self._drop_finding(key)
        for track_key in [k for k in self._ledger.identities if k[0] == e.source]:
            del self._ledger.identities[track_key]
        # staff's verdicts too: a rejoined device's analysis numbers its face tracks afresh
        for track_key in [k for k in self._ledger.overrides if k[0] == e.source]:
            del self._ledger.overrides[track_key]
        self._refresh_sides()
        self._update_clean()

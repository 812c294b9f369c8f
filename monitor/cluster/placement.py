"""Which node a new call starts on: a pure choice from the nodes' reported load.

Theory of operation. Every node reports its load (:class:`NodeLoad`) to the registry about once a
second (``registry.py``). When a call's first device reaches any node, that node reads every
report and the calls placed on each node lately, and :func:`choose_node` picks the call's node:

- a node is a *candidate* while it serves: its report is fresh (within ``STALE_S``, LiveKit's
  5 s) and it is not draining;
- it *fits* when ``monitor.call.admission.overload`` finds nothing wrong with its load, with the
  calls placed on it since its report counted as running, and the calls placed on it within the
  ramp-up window (20 s) each counted as ``ramp_call_cores`` more CPU: its devices have not
  connected yet, so its measured load cannot show them. Without that allowance every node placing
  a burst of calls would see the same emptiest node and pile the burst onto it (the thundering
  herd that made BigBlueButton's load-based placement worse than round-robin);
- of the nodes that fit, the least loaded wins: the lowest CPU share with the allowance, then the
  fewest calls, then the name (so every node, given the same reports, chooses alike). Nodes within
  ``NEAR`` (5 points of CPU share) of the least loaded count as equal, and the call's id picks
  among them (rendezvous hashing): calls starting at the same moment on several nodes then spread
  over the near-equal nodes instead of all racing for one (their claims would succeed one at a
  time), and each call still lands where any node would put it.

None fits: :class:`NoNode`, naming each node's reason. The choice is only a proposal: the registry
claims the call for the chosen node atomically, and only while the node still has room for it:
:func:`headroom` says how many more calls it could take on the figures read, and the claim fails
if others were placed there meanwhile and used that room up (``registry.py``), so a choice made
on stale figures is made again.

Pure and synchronous (frozen values in, a node name out), like ``policies/``: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from monitor.call.admission import TRY_LATER, Limits, Load, overload

#: A node whose latest report is older than this is not serving (LiveKit's AvailableSeconds).
STALE_S = 5.0
#: Nodes whose CPU share (with the ramp-up allowance) is within this of the least loaded's are equal.
NEAR = 0.05
#: A call placed this long before a node's report may not be in its count yet (its first device's
#: join is still on its way there), so it is counted as well: a call counted twice for a moment
#: is better than a node given one call more than its limit.
REPORT_LAG_S = 2.0


class NoNode(Exception):
    """No node can take the call now; the message is for the person joining."""

    code = "over_capacity"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class CallBrief:
    """One call running on a node, as its report tells the other nodes (their consoles' board)."""

    call_id: str
    state: str
    present: tuple[tuple[str, str], ...] = ()  # (participant, role) of each device connected


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node's report: who it is, where it is reached, and its measured load."""

    node: str
    url: str  # where other nodes (and redirected devices) reach it: http(s)://host:port
    at: float  # wall-clock time of the report
    cores: int = 1
    running: int = 0
    cpu: float | None = None
    lag_ms: float | None = None
    analysis_wait_ms: float | None = None
    draining: bool = False
    calls: tuple[CallBrief, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> NodeLoad:
        """A report as the registry holds it; ``ValueError`` naming what is wrong."""
        try:
            body: Any = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
            calls = tuple(
                CallBrief(
                    str(c["call_id"]), str(c["state"]), tuple((str(p), str(r)) for p, r in c["present"])
                )
                for c in body.get("calls", ())
            )
            return cls(
                node=str(body["node"]),
                url=str(body["url"]),
                at=float(body["at"]),
                cores=int(body["cores"]),
                running=int(body["running"]),
                cpu=_number(body.get("cpu")),
                lag_ms=_number(body.get("lag_ms")),
                analysis_wait_ms=_number(body.get("analysis_wait_ms")),
                draining=bool(body.get("draining", False)),
                calls=calls,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"a node report that cannot be read ({exc!s:.80})") from None


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def serving(node: NodeLoad, now: float, stale_s: float = STALE_S) -> str | None:
    """Why ``node`` takes no new call at all (stale, draining), or None while it serves."""
    if node.draining:
        return "draining"
    if now - node.at > stale_s:
        return f"silent for {now - node.at:.0f} s"
    return None


def effective_load(node: NodeLoad, placed: Sequence[float], limits: Limits, now: float) -> Load:
    """``node``'s load counting the calls placed on it (``placed``: when each was, newest or not):
    those since its report (less ``REPORT_LAG_S``) as running, those within the ramp-up window as
    recent."""
    since_report = sum(1 for t in placed if t > node.at - REPORT_LAG_S)
    recent = sum(1 for t in placed if t > now - limits.ramp_s)
    return Load(
        running=node.running + since_report,
        recent=recent,
        cores=node.cores,
        cpu=node.cpu,
        lag_ms=node.lag_ms,
        analysis_wait_ms=node.analysis_wait_ms,
    )


def choose_node(
    nodes: Sequence[NodeLoad],
    placed: Mapping[str, Sequence[float]],
    limits: Limits,
    now: float,
    *,
    key: str = "",
    stale_s: float = STALE_S,
) -> str:
    """The node a new call starts on (see the theory of operation); :class:`NoNode` if none fits.
    ``placed``: per node, when each call placed on it within the ramp-up window was placed;
    ``key``: the call's id, which picks among near-equal nodes (none: the first of them)."""
    why: dict[str, str] = {}
    fit: list[tuple[float, int, str]] = []
    for node in sorted(nodes, key=lambda n: n.node):
        reason = serving(node, now, stale_s)
        load = effective_load(node, placed.get(node.node, ()), limits, now)
        if reason is None:
            reason = overload(load, limits)
        if reason is None:
            fit.append((load.cpu_with_ramp(limits), load.running, node.node))
        else:
            why[node.node] = reason
    if fit:
        best = min(fit)
        if not key:
            return best[2]
        near = [entry for entry in fit if entry[0] <= best[0] + NEAR]
        return min(near, key=lambda entry: hashlib.sha256(f"{key}\0{entry[2]}".encode()).digest())[2]
    if not why:
        raise NoNode(f"no monitoring server is running; {TRY_LATER}")
    listed = "; ".join(f"{name}: {reason}" for name, reason in why.items())
    raise NoNode(f"every monitoring server is busy ({listed}); {TRY_LATER}")


def headroom(node: NodeLoad, placed: Sequence[float], limits: Limits, now: float, most: int = 10_000) -> int:
    """How many more calls ``node`` can take, one after another, on these figures (0: none)."""
    load = effective_load(node, placed, limits, now)
    if serving(node, now) is not None:
        return 0
    more = 0
    while (
        more < most
        and overload(replace(load, running=load.running + more, recent=load.recent + more), limits) is None
    ):
        more += 1
    return more


__all__ = [
    "NEAR",
    "REPORT_LAG_S",
    "STALE_S",
    "CallBrief",
    "NoNode",
    "NodeLoad",
    "choose_node",
    "effective_load",
    "headroom",
    "serving",
]

"""Placement: the pure choice of a call's node from the nodes' reports."""

from __future__ import annotations

from collections import Counter

import pytest

from monitor.call.admission import Limits
from monitor.cluster.placement import CallBrief, NodeLoad, NoNode, choose_node, effective_load, headroom

NOW = 1_000_000.0


def node(name: str, cpu: float | None = 0.1, running: int = 0, **more: object) -> NodeLoad:
    fields: dict[str, object] = {"cores": 2, "lag_ms": 2.0, "analysis_wait_ms": 20.0, "at": NOW - 0.5}
    fields.update(more)
    return NodeLoad(node=name, url=f"http://{name}:8080", cpu=cpu, running=running, **fields)  # type: ignore[arg-type]


def test_the_least_loaded_node_that_fits_wins() -> None:
    nodes = [node("a", 0.5, 6), node("b", 0.2, 3), node("c", 0.3, 1)]
    assert choose_node(nodes, {}, Limits(), NOW) == "b"
    # equal CPU: the fewer calls, then the name
    assert choose_node([node("a", 0.2, 3), node("b", 0.2, 2)], {}, Limits(), NOW) == "b"
    assert choose_node([node("b", 0.2, 2), node("a", 0.2, 2)], {}, Limits(), NOW) == "a"


def test_silent_and_draining_nodes_take_nothing() -> None:
    nodes = [node("a", 0.0, at=NOW - 6.0), node("b", 0.0, draining=True), node("c", 0.7, 9)]
    assert choose_node(nodes, {}, Limits(), NOW) == "c"
    with pytest.raises(NoNode) as refused:
        choose_node(nodes[:2], {}, Limits(), NOW)
    assert "a: silent for 6 s; b: draining" in refused.value.message
    assert refused.value.code == "over_capacity"
    with pytest.raises(NoNode, match="no monitoring server is running"):
        choose_node([], {}, Limits(), NOW)


def test_every_node_over_its_limit_is_named() -> None:
    nodes = [node("a", 0.9, 10), node("b", 0.2, 4, lag_ms=80.0), node("c", 0.2, 4, analysis_wait_ms=600.0)]
    with pytest.raises(NoNode) as refused:
        choose_node(nodes, {}, Limits(), NOW)
    message = refused.value.message
    assert "every monitoring server is busy" in message
    assert "a: its processors are 90% busy" in message
    assert "b: it is running 80 ms late" in message and "c: its analysis is 600 ms behind" in message


def test_calls_placed_since_a_report_count_as_running_and_as_ramping_up() -> None:
    report = node("a", 0.3, 2)  # reported at NOW - 0.5
    # before the ramp-up window; well before the report; 1.3 s before it (its join may not have
    # reached the node when it reported: counted); after it
    placed = [NOW - 30.0, NOW - 10.0, NOW - 1.8, NOW - 0.2]
    load = effective_load(report, placed, Limits(ramp_s=20.0), NOW)
    assert (load.running, load.recent) == (4, 3)
    assert load.cpu_with_ramp(Limits(ramp_s=20.0, ramp_call_cores=0.1)) == pytest.approx(0.3 + 3 * 0.05)


def burst(
    nodes: list[NodeLoad], limits: Limits, starts: int, keyed: bool = False
) -> tuple[Counter[str], int]:
    """``starts`` calls placed one after another on the same reports (a burst is faster than the
    next report); returns the calls per node and how many found no node."""
    placed: dict[str, list[float]] = {n.node: [] for n in nodes}
    refused = 0
    for i in range(starts):
        now = NOW + i * 0.001
        try:
            chosen = choose_node(nodes, placed, limits, now, key=f"call-{i}" if keyed else "")
        except NoNode:
            refused += 1
            continue
        placed[chosen].append(now)
    return Counter({name: len(times) for name, times in placed.items()}), refused


def test_a_burst_spreads_over_the_nodes_with_the_ramp_up_allowance() -> None:
    nodes = [node("a", 0.10), node("b", 0.12), node("c", 0.15)]
    spread, refused = burst(nodes, Limits(), 100)
    # each call placed counts 0.1 core (0.05 of 2 cores) until its load shows; a node fits while
    # that stays within 0.8: a takes 15 (0.10 + 14 x 0.05), b 14 (0.12 + 13 x 0.05), c 14 (0.15 + 13 x 0.05)
    assert spread == Counter({"a": 15, "b": 14, "c": 14}) and refused == 100 - 43


def test_without_the_allowance_a_burst_herds_onto_the_emptiest_node() -> None:
    nodes = [node("a", 0.10), node("b", 0.20), node("c", 0.30)]
    spread, refused = burst(nodes, Limits(ramp_call_cores=0.0), 100, keyed=True)
    assert spread == Counter({"a": 100, "b": 0, "c": 0}) and refused == 0


def test_near_equal_nodes_are_picked_by_the_calls_id() -> None:
    """Within NEAR of the least loaded, the call's id picks (rendezvous hashing): the same call
    always lands on the same node, and different calls spread; a node further off is not picked."""
    nodes = [node("a", 0.10), node("b", 0.13), node("c", 0.40)]
    picks = Counter(choose_node(nodes, {}, Limits(), NOW, key=f"call-{i}") for i in range(200))
    assert set(picks) == {"a", "b"} and min(picks.values()) > 60, picks
    assert all(
        choose_node(nodes, {}, Limits(), NOW, key="same") == choose_node(nodes, {}, Limits(), NOW, key="same")
        for _ in range(5)
    )
    spread, refused = burst([node("a", 0.10), node("b", 0.12), node("c", 0.15)], Limits(), 100, keyed=True)
    assert spread == Counter({"a": 15, "b": 14, "c": 14}) and refused == 57


def test_a_fixed_limit_still_holds_in_a_cluster() -> None:
    spread, refused = burst([node("a", 0.1), node("b", 0.1)], Limits(max_calls=3), 10)
    assert spread == Counter({"a": 3, "b": 3}) and refused == 4


def test_a_report_reads_back_and_bad_ones_are_named() -> None:
    report = NodeLoad(
        "a", "http://a:1", NOW, 4, 2, 0.25, 3.5, None, True, (CallBrief("c1", "live", (("v1", "visitor"),)),)
    )
    assert NodeLoad.from_json(report.to_json()) == report
    for raw in ("[]", '{"node": "a"}', "not json", '{"node":"a","url":"u","at":"x","cores":1,"running":0}'):
        with pytest.raises(ValueError, match="a node report that cannot be read"):
            NodeLoad.from_json(raw)


def test_headroom_is_the_calls_a_node_can_still_take_one_after_another() -> None:
    limits = Limits()  # 0.8 of the cores; 0.1 core per call placed in the last 20 s
    assert headroom(node("a", 0.10), [], limits, NOW) == 15  # 0.10 + 14 x 0.05 <= 0.8 < 0.10 + 15 x 0.05
    assert headroom(node("a", 0.10), [NOW - 1.0] * 5, limits, NOW) == 10
    assert headroom(node("a", 0.10), [], Limits(max_calls=4), NOW) == 4
    assert headroom(node("a", 0.10, running=3), [], Limits(max_calls=4), NOW) == 1
    assert headroom(node("a", 0.10, draining=True), [], limits, NOW) == 0
    assert headroom(node("a", 0.95, running=2), [], limits, NOW) == 0
    assert headroom(node("a", 0.95, running=0), [], limits, NOW) == 1  # an idle node takes one call

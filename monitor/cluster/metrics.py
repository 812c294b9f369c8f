"""A cluster node's figures on its /metrics: this node's routing and placements, every live node's
reported load, and the cluster-wide placement counts kept in Redis (the same on every node).

Read at scrape time from what the heartbeat keeps (``node.py``): no Redis request per scrape.
"""

from __future__ import annotations

from typing import Any, Protocol


class Page(Protocol):
    """``monitor.server.metrics.Exposition``."""

    def family(self, name: str, kind: str, help_text: str) -> None: ...

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None: ...


def render(node: Any, page: Page) -> None:
    """``node``: a ``monitor.cluster.node.ClusterNode``."""
    stats = node.stats
    page.family("monitor_cluster_joins_routed_total", "counter", "Joins this node sent to the call's node.")
    page.sample("monitor_cluster_joins_routed_total", stats.proxied, {"how": "proxy"})
    page.sample("monitor_cluster_joins_routed_total", stats.redirected, {"how": "redirect"})
    page.family(
        "monitor_cluster_placements_total",
        "counter",
        "Calls started here (placed by any node), devices refused here, calls lost to another node.",
    )
    page.sample("monitor_cluster_placements_total", stats.placed_here, {"result": "placed_here"})
    page.sample("monitor_cluster_placements_total", stats.refused, {"result": "refused"})
    page.sample("monitor_cluster_placements_total", stats.lost, {"result": "lost_to_another_node"})
    page.family("monitor_cluster_place_seconds_mean", "gauge", "Mean time to find or claim a call's node.")
    mean = stats.place_s_total / stats.placements if stats.placements else 0.0
    page.sample("monitor_cluster_place_seconds_mean", round(mean, 6))
    page.family("monitor_cluster_draining", "gauge", "1 while this node takes no new call.")
    page.sample("monitor_cluster_draining", int(node.draining))
    page.family("monitor_cluster_redis_ok", "gauge", "1 while this node's heartbeat reaches Redis.")
    page.sample("monitor_cluster_redis_ok", int(node.redis_ok))
    page.family("monitor_cluster_bus_notices_total", "counter", "Audit notices on the bus, by direction.")
    page.sample("monitor_cluster_bus_notices_total", node.bus.notices_out, {"direction": "sent"})
    page.sample("monitor_cluster_bus_notices_total", node.bus.notices_in, {"direction": "received"})
    reports = node.reports
    page.family("monitor_cluster_nodes", "gauge", "Live nodes, by whether they take new calls.")
    draining = sum(1 for r in reports.values() if r.draining)
    page.sample("monitor_cluster_nodes", len(reports) - draining, {"state": "serving"})
    page.sample("monitor_cluster_nodes", draining, {"state": "draining"})
    page.family("monitor_cluster_node_calls", "gauge", "Calls running on each live node, as it reported.")
    for name, report in sorted(reports.items()):
        page.sample("monitor_cluster_node_calls", report.running, {"node": name})
    page.family("monitor_cluster_node_cpu", "gauge", "Each live node's CPU share (0..1), as it reported.")
    for name, report in sorted(reports.items()):
        if report.cpu is not None:
            page.sample("monitor_cluster_node_cpu", round(report.cpu, 4), {"node": name})
    page.family(
        "monitor_cluster_node_loop_lag_ms", "gauge", "Each live node's loop lag (p99, 10 s), reported."
    )
    for name, report in sorted(reports.items()):
        if report.lag_ms is not None:
            page.sample("monitor_cluster_node_loop_lag_ms", round(report.lag_ms, 3), {"node": name})
    cluster = node.cluster_stats
    if cluster is not None:
        page.family(
            "monitor_cluster_placements_all_total", "counter", "Placements by every node (Redis), by outcome."
        )
        for result in ("placed", "taken_over", "refused", "retried"):
            page.sample("monitor_cluster_placements_all_total", getattr(cluster, result), {"result": result})

"""A server's measured load: what its admission by load (``monitor.call.admission``) and a
cluster's placement (``monitor.cluster``) judge.

The probe (``monitor.load.LoadProbe``) samples the CPU time of the server's process and of its
workers (analysis processes, or relay worker processes and their analysis), the event loop's lag
(the metrics' ``LoopLag``) and how long frames waited for analysis, read from the analysis pool's
figures or, with relay workers, from theirs.
"""

from __future__ import annotations

import functools
from typing import Any

from monitor.call.admission import Measured
from monitor.load import LoadProbe, worker_pids


def start_probe(server: Any) -> LoadProbe:
    """A started probe of ``server`` (``monitor.server.serve.Server``, its metrics registered)."""
    probe = LoadProbe(
        server.metrics.lag,
        pids=functools.partial(_worker_pids, server),
        analysis=functools.partial(_analysis_totals, server),
    )
    probe.start()
    return probe


def measured(probe: LoadProbe | None) -> Measured:
    """The load ``probe`` measures now (nothing measured before the server has started)."""
    if probe is None:
        return Measured()
    return Measured(probe.cores, probe.cpu(), probe.lag_ms(), probe.analysis_wait_ms())


def _worker_pids(server: Any) -> list[int]:
    relay = [link.pid for link in server.relay.links if link.alive] if server.relay is not None else []
    return worker_pids() + relay


def _analysis_totals(server: Any) -> dict[str, tuple[int, float]]:
    if server.pool is not None:
        analysis = server.pool.stats()
    elif server.relay is not None:
        analysis = server.relay.stats().analysis
    else:
        return {}
    return {key: (s.analysed, s.waited_s) for key, s in analysis.streams.items()}


__all__ = ["measured", "start_probe"]

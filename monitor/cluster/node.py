"""One node of a cluster: ``monitor serve --redis URL``.

Theory of operation. A :class:`ClusterNode` joins a server (its :class:`Host`) to the others
through Redis. Every ``HEARTBEAT_S`` it reports the server's measured load and the calls it runs
(``registry.py``), reads every other node's report (for the consoles' board, ``remote.py``),
releases the claims of its calls that have ended, and sees whether an operator asked it to drain.

A call runs on the node placement chooses when its first device joins, and nowhere else: a node
loads a call only when a device's join routes it there (:meth:`ClusterNode.route`), never ahead
of time, so every decision of a call, and every audit record of it, is made and written once, by
its node. A device whose call runs elsewhere is proxied or redirected there (``routing.py``).

The audit log's commits go out on the bus (``bus.py``) so that consoles on every node show every
record at once; requests from other nodes' consoles (pause, approve, end, watch) are carried out
here on the call itself.

Draining (``SIGTERM`` to ``monitor serve --redis``, or ``monitor node drain``): the node's report
says so at once, placement passes it by, and the calls it runs go on to their end (their devices
may rejoin). Failure: when a node's heartbeat stops, its report expires after ``NODE_TTL_S`` and
the next device of each of its calls (the join page and the Python device reconnect by
themselves) is placed on a live node, which loads the call from the store as a restarted server
does: it starts at the security check, carrying over the pauses that need staff
(``monitor.server.fail_closed``, ``monitor.call.held``; their alert names the node that
stopped). Should a node that was taken for dead come back, its heartbeat finds its calls claimed
elsewhere and it lets them go (their devices are closed and rejoin the call's new node).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from monitor.call.admission import AdmissionStats, Limits, Measured, OverCapacity
from monitor.call.seats import JoinRefused
from monitor.cluster import metrics as cluster_metrics
from monitor.cluster import routing
from monitor.cluster.bus import Bus, RequestFailed
from monitor.cluster.placement import CallBrief, NodeLoad, NoNode
from monitor.cluster.registry import HEARTBEAT_S, NODE_TTL_S, PREFIX, Registry, RegistryError
from monitor.cluster.remote import ClusterCalls

log = logging.getLogger(__name__)

#: A watch whose console's node stopped reporting, or older than this, is closed by the call's node.
WATCH_MAX_S = 4 * 3600.0
#: ... or not connected this long after it was offered.
WATCH_CONNECT_S = 60.0


class Host(Protocol):
    """What a node needs of its server (``monitor.server.serve.Server``)."""

    calls: Any  # monitor.call.calls.Calls: the calls running here
    store: Any  # monitor.store.database.Store: join tokens and calls
    audit: Any  # monitor.store.audit.AuditLog: its commits go on the bus
    metrics: Any  # monitor.server.metrics.Metrics: the node's figures join them (None: no /metrics)

    def measured(self) -> Measured: ...

    def node_url(self) -> str: ...  # where the other nodes (and redirected devices) reach it


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str
    node: str
    routing: str = "proxy"
    prefix: str = PREFIX
    heartbeat_s: float = HEARTBEAT_S
    node_ttl_s: float = NODE_TTL_S

    def __post_init__(self) -> None:
        if self.routing not in routing.ROUTINGS:
            raise ValueError(f"routing must be one of {', '.join(routing.ROUTINGS)} (got {self.routing!r})")


@dataclass
class RoutingStats:
    proxied: int = 0
    redirected: int = 0
    unreachable: int = 0
    placed_here: int = 0  # calls started on this node (placed here by any node)
    refused: int = 0  # devices this node refused: no node could take their call
    lost: int = 0  # calls taken from this node by another (it was thought dead)
    place_s_total: float = 0.0  # time spent placing, for the mean
    placements: int = 0


class PlacedAdmission:
    """``Calls.admission`` of a cluster node: placement already decided that a call loaded here
    runs here (``route``); with relay workers the server's own admission (``inner``) still picks
    the worker it runs on. The figures are the node's placements: a call counts once when its
    first device is admitted here, whichever node placed it here."""

    def __init__(self, node: ClusterNode, inner: Any = None) -> None:
        self.node = node
        self.inner = inner
        self.started: set[str] = set()  # calls admitted here, until they end (``forget``)

    def admit(self, call_id: str, running: Iterable[str]) -> None:
        if self.inner is not None:
            self.inner.admit(call_id, running)
        if call_id not in self.started:
            self.started.add(call_id)
            self.node.stats.placed_here += 1

    def forget(self, running: Iterable[str]) -> None:
        """Keep only the calls still running here (a call taken back later counts again)."""
        self.started &= set(running)

    def stats(self) -> AdmissionStats:
        return AdmissionStats(
            self.node.stats.placed_here, self.node.stats.refused, self.node.limits.max_calls
        )


class ClusterNode:
    def __init__(self, settings: Settings, limits: Limits | None = None) -> None:
        self.settings = settings
        self.name = settings.node
        self.limits = limits or Limits()
        self.redis: Redis = Redis.from_url(settings.redis_url, socket_connect_timeout=5.0)
        self.registry = Registry(
            self.redis, settings.prefix, limits=self.limits, node_ttl_s=settings.node_ttl_s
        )
        self.bus = Bus(self.redis, settings.prefix, settings.node)
        self.host: Host | None = None
        self.admission: PlacedAdmission | None = None  # the server's admission, once started
        self.draining = False
        self.drain_asked = False  # by an operator through Redis (``monitor node drain``)
        self.stats = RoutingStats()
        self.reports: dict[str, NodeLoad] = {}  # every live node's latest report (this one's too)
        self._where: dict[str, tuple[str, CallBrief]] = {}  # call id -> (node, brief), other nodes
        self._mine: set[str] = set()  # the calls running here at the latest heartbeat
        self._watches: dict[str, tuple[Any, list[Any], float]] = {}  # id -> (peer, tracks, since)
        self._task: asyncio.Task[None] | None = None
        self.redis_ok = False
        self.cluster_stats: Any = None  # registry.ClusterStats, read with every heartbeat
        self._publishing: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()  # set at a heartbeat that finds no call running here
        self._stopping = False

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, host: Host) -> None:
        """Join the cluster: first report, the bus, the heartbeat. ``RegistryError`` when Redis
        cannot be reached."""
        self.host = host
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            raise RegistryError(f"--redis {self.settings.redis_url}: cannot reach Redis: {exc}") from None
        other = next((r for r in await self.registry.nodes() if r.node == self.name), None)
        if other is not None and other.url != host.node_url():
            raise RegistryError(
                f"a node named {self.name} is running already, at {other.url}: give each node its own --node"
            )
        relay_workers = getattr(host, "relay", None) is not None
        self.admission = PlacedAdmission(self, host.calls.admission if relay_workers else None)
        host.calls.admission = self.admission
        if host.audit is not None:
            host.audit.on_committed(self._committed)
            self.bus.on_audit(lambda notice: host.audit.wake())
        for op in ("pause", "resume", "end", "watch", "watch_answer", "watch_close"):
            self.bus.serve(op, getattr(self, f"_serve_{op}"))
        await self.bus.start()
        if host.metrics is not None:  # the node's figures on the server's /metrics
            host.metrics.extra.append(functools.partial(cluster_metrics.render, self))
        await self.beat()
        self._task = asyncio.ensure_future(self._beat_forever())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            # a cancellation that lands inside a Redis request may be taken for a lost connection by
            # the client (and caught as one): the flag ends the loop, and the wait is bounded
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self.settings.heartbeat_s + 5.0)
            self._task = None
        for watch in list(self._watches):
            await self._serve_watch_close(watch)
        with contextlib.suppress(RedisError, OSError):
            await self.registry.leave(self.name)
        await self.bus.stop()
        await self.redis.aclose()

    async def drain(self) -> None:
        """Take no new call from now on (reported at once); the calls running here go on."""
        if not self.draining:
            self.draining = True
            log.warning("node %s is draining: no new calls; %d running", self.name, len(self.running()))
            with contextlib.suppress(RegistryError):
                await self.beat()

    async def undrain(self) -> None:
        if self.draining:
            self.draining = False
            log.warning("node %s takes new calls again", self.name)
            with contextlib.suppress(RegistryError):
                await self.beat()

    def view(self, calls: Any, store: Any) -> ClusterCalls:
        """What the console uses as its calls: ``calls`` (this node's), then the other nodes'
        (remote.py), their state read from ``store``."""
        return ClusterCalls(calls, self.bus, self.where, store)

    def where(self, call_id: str) -> tuple[str, CallBrief] | None:
        """The other node running ``call_id`` and its latest report of it, else None."""
        return self._where.get(call_id)

    # ---- the heartbeat -------------------------------------------------------------------------
    def running(self) -> list[Any]:
        assert self.host is not None
        return [call for call in self.host.calls if not call.ended.is_set()]

    def report(self) -> NodeLoad:
        assert self.host is not None
        measured = self.host.measured()
        calls = tuple(
            CallBrief(
                call.call_id,
                str(getattr(call.state, "value", call.state)),
                tuple((p, _role(device)) for p, device in dict(call.devices).items()),
            )
            for call in self.running()
        )
        return NodeLoad(
            node=self.name,
            url=self.host.node_url(),
            at=time.time(),
            cores=measured.cores,
            running=len(calls),
            cpu=measured.cpu,
            lag_ms=measured.lag_ms,
            analysis_wait_ms=measured.analysis_wait_ms,
            draining=self.draining,
            calls=calls,
        )

    async def beat(self) -> None:
        """One heartbeat: report, read the others, release ended calls, let lost calls go."""
        assert self.host is not None
        report = self.report()
        running = [brief.call_id for brief in report.calls]
        drain, lost = await self.registry.heartbeat(report, running)
        self.redis_ok = True
        if drain != self.drain_asked:
            self.drain_asked = drain
            await (self.drain() if drain else self.undrain())
        for call_id in lost:
            owner = await self.registry.owner(call_id)
            if owner and owner != self.name:
                await self._let_go(call_id, owner)
        for call_id in self._mine - set(running):  # ended (or dropped) since the last heartbeat
            await self.registry.release(call_id, self.name)
        self._mine = set(running)
        if self.admission is not None:
            self.admission.forget(running)
        if running:
            self.idle.clear()
        else:
            self.idle.set()
        self.cluster_stats = await self.registry.stats()
        reports = {r.node: r for r in await self.registry.nodes()}
        self.reports = reports
        self._where = {
            brief.call_id: (name, brief)
            for name, r in reports.items()
            if name != self.name
            for brief in r.calls
        }
        await self._sweep_watches()

    async def _beat_forever(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                await self.beat()
            except (RegistryError, RedisError, OSError) as exc:
                if self.redis_ok:
                    log.error("node %s cannot reach Redis (%s): no new call can be placed", self.name, exc)
                self.redis_ok = False
            except Exception:
                log.exception("node %s heartbeat failed", self.name)

    async def _let_go(self, call_id: str, owner: str) -> None:
        """Another node runs this call now (this one was taken for dead): close it here quietly,
        so its devices rejoin there."""
        assert self.host is not None
        call = self.host.calls.get(call_id)
        if call is None:
            return
        self.stats.lost += 1
        log.warning("call %s now runs on node %s: letting it go here", call_id, owner)
        self._mine.discard(call_id)  # its claim is the other node's: never released from here
        await call.close()
        self.host.calls.remove(call_id)

    # ---- routing a device's join ---------------------------------------------------------------
    async def route(self, token: str) -> tuple[str, str] | None:
        """Where the call of ``token`` runs: None for here (or when the token does not work: the
        join refuses it here), else (node, its URL). Places the call if it runs nowhere yet;
        ``JoinRefused`` (over_capacity) when no node can take it."""
        assert self.host is not None
        grant, status = self.host.store.join_token_status(token)
        if grant is None or status != "ok":
            return None
        call_id = grant.call_id
        local = self.host.calls.get(call_id)
        if local is not None and not local.ended.is_set():
            return None
        row = self.host.store.call(call_id)
        if row is not None and row.state == "ended":
            return None
        started = time.monotonic()
        try:
            placement = await self.registry.place(call_id)
        except NoNode as exc:
            self.stats.refused += 1
            raise JoinRefused(exc.code, exc.message) from None
        except (RegistryError, RedisError, OSError) as exc:
            log.error("placing call %s: %s", call_id, exc)
            raise JoinRefused(
                OverCapacity.code,
                "the monitoring servers cannot agree where this call runs now; please try again in a minute",
            ) from None
        finally:
            self.stats.placements += 1
            self.stats.place_s_total += time.monotonic() - started
        if placement.node == self.name:
            if placement.taken_over:
                log.warning("call %s taken over from node %s (gone)", call_id, placement.taken_over)
            return None
        report = self.reports.get(placement.node)
        if report is None:
            report = next((r for r in await self.registry.nodes() if r.node == placement.node), None)
        if report is None:
            raise JoinRefused(
                OverCapacity.code, "the server running this call is restarting; please try again"
            )
        return placement.node, report.url

    async def forward(self, device: Any, join_frame: str | bytes, node: str, url: str) -> None:
        """Send the device to the call's node (``--routing``), returning when it is done here."""
        if self.settings.routing == "redirect":
            self.stats.redirected += 1
            await routing.redirect(device, url)
            return
        self.stats.proxied += 1
        await routing.proxy(device, join_frame, node, url)

    def node_origins(self) -> set[str]:
        """Every live node's origin (scheme://host:port): a join page served by one of them may
        open this node's signalling socket (``--routing redirect``)."""
        return {report.url for report in self.reports.values()}

    # ---- the bus -------------------------------------------------------------------------------
    def _committed(self, record: Any) -> None:
        notice = {"id": record.id, "prison": record.prison, "call_id": record.call_id, "kind": record.kind}
        task = asyncio.ensure_future(self.bus.publish_audit(notice))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def _call(self, call_id: str) -> Any:
        assert self.host is not None
        call = self.host.calls.get(call_id)
        if call is None or call.ended.is_set():
            raise RequestFailed("this call is not running now")
        return call

    async def _serve_pause(self, call_id: str, note: str = "", staff: str = "") -> None:
        await self._call(call_id).staff_pause(note, staff)

    async def _serve_resume(self, call_id: str, staff: str = "") -> None:
        await self._call(call_id).staff_resume(staff)

    async def _serve_end(self, call_id: str, note: str = "", staff: str = "") -> None:
        await self._call(call_id).staff_end(note, staff)

    async def _serve_watch(self, call_id: str) -> dict[str, Any]:
        call = self._call(call_id)
        remote = getattr(call, "watch_peer", None)
        if callable(remote):  # the call runs in a relay worker here
            pc, sdp, slots, servers = await remote()
            tracks: list[Any] = []
        else:
            from monitor.console.watch import watch_peer

            pc, tracks, sdp, slots, servers = await watch_peer(call)
        ident = f"{self.name}-{id(pc):x}-{time.monotonic_ns():x}"
        self._watches[ident] = (pc, tracks, time.monotonic())
        return {"watch": ident, "sdp": sdp, "slots": slots, "ice_servers": servers}

    async def _serve_watch_answer(self, watch: str, sdp: str) -> None:
        entry = self._watches.get(watch)
        if entry is None:
            raise RequestFailed("this watch has ended")
        from aiortc import RTCSessionDescription

        await entry[0].setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def _serve_watch_close(self, watch: str) -> None:
        entry = self._watches.pop(watch, None)
        if entry is None:
            return
        pc, tracks, _ = entry
        for track in tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await pc.close()

    async def _sweep_watches(self) -> None:
        """Close watches nobody can be using: too old, or whose peer failed or closed."""
        now = time.monotonic()
        for ident, (pc, _, since) in list(self._watches.items()):
            state = getattr(pc, "connectionState", "")
            unanswered = state in ("new", "connecting") and now - since > WATCH_CONNECT_S
            if (
                now - since > WATCH_MAX_S
                or state in ("failed", "closed")
                or unanswered
                or getattr(pc, "lost", False)
            ):
                await self._serve_watch_close(ident)


def _role(device: Any) -> str:
    return str(getattr(getattr(getattr(device, "seat", None), "role", None), "value", "visitor"))


__all__ = ["ClusterNode", "Host", "PlacedAdmission", "RoutingStats", "Settings"]

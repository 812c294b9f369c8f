"""`/metrics`: the server's figures in the Prometheus text exposition format (version 0.0.4).

Theory of operation. :class:`Metrics` is the registry. It holds a few counters of its own (cheap
``inc`` calls, usable by any code) and, at scrape time, asks the server's parts for their figures:
each has a ``stats()`` that returns plain frozen values, and this module reads nothing else of them.

- ``calls`` (``monitor.call.calls.Calls``): each call's state, devices (role, media connected, the
  frames sent on each of their tracks), taps (frames seen for analysis), the analysis results not
  yet handled, and admission's answers (``monitor.call.stats``);
- ``pool`` (``monitor.workers.analysis_pool.AnalysisPool``), or with relay workers ``relay``
  (``monitor.relay_workers.pool.RelayPool``, whose figures also cover the workers' analysis, as
  their snapshots said): frames analysed per stream, what is in flight, restarts, inbox depths;
- ``hub`` (``monitor.hub.Hub``): subscribers and the slowest one's backlog; and ``subscribe()``: a
  background task counts every published ``state`` record into pauses by reason and transitions,
  and every ``alert`` by reason, so no call code has to report them.

Two more background tasks: :class:`monitor.load.LoopLag` sleeps ``interval`` again and again and records how
late each wake-up is (the event loop's lag; last, max and p99 over a sliding window), and a
sampler that once a second turns the pool's cumulative analysed counts into frames per second per
stream (over the last ``FPS_WINDOW_S``) and into monotonic totals (streams come and go with calls).

Frames dropped by keep-latest analysis are estimated as ``seen - analysed - in flight``, which is
exact to within one frame (the frame waiting in the tap).

Access (:func:`register_metrics`): without a token, only loopback clients (127.0.0.0/8, ::1, and
IPv4-mapped loopback) get the page, others 403. With a token (``--metrics-token-file`` or
``MONITOR_METRICS_TOKEN``), every client, loopback included, must send ``Authorization: Bearer
<token>`` (else 401): behind a reverse proxy on the same host, every client looks like loopback.
Only a client that presented the configured token gets the series labelled with call ids and
participant ids (frames forwarded per device, analysis per stream: ``render(detail=True)``); a
loopback client of a server without a token gets the rest (``render(detail=False)``): counts by
state, reason, role, worker and queue, and the all-streams totals, which name nobody.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import math
import os
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.load import LoopLag
from policies.decisions import State

if TYPE_CHECKING:  # these load websockets, aiortc, models: imported when the server runs, not by the CLI
    from monitor.call.calls import Calls
    from monitor.call.stats import CallsStats, CallStats
    from monitor.http import HttpRequest, Router
    from monitor.hub import Hub
    from monitor.relay_workers.pool import RelayPool, RelayStats
    from monitor.workers.analysis_pool import AnalysisPool, AnalysisStats, StreamStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SAMPLE_S = 1.0
FPS_WINDOW_S = 5.0
TOKEN_ENV = "MONITOR_METRICS_TOKEN"
STATES = tuple(state.value for state in State)


def add_metrics_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-token-file",
        metavar="FILE",
        help=f"require 'Authorization: Bearer TOKEN' on /metrics from every client, TOKEN read from FILE "
        f"(or ${TOKEN_ENV}; never on the command line, where `ps` shows it); only with it are per-call "
        "series (call and participant ids) served. Without a token /metrics answers loopback clients "
        "only, with figures that name no call or person",
    )


# ---- exposition ---------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Builds one page: each family's HELP and TYPE once, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._seen: set[str] = set()

    def family(self, name: str, kind: str, help_text: str) -> None:
        if name in self._seen:
            raise ValueError(f"metric family {name} declared twice")
        self._seen.add(name)
        self._lines.append(f"# HELP {name} {_escape(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        if labels:
            inner = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
            self._lines.append(f"{name}{{{inner}}} {_number(value)}")
        else:
            self._lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


# ---- the registry -------------------------------------------------------------------------------


class Metrics:
    """Counters kept here plus the live objects read at scrape time (all optional)."""

    def __init__(
        self,
        *,
        calls: Calls | None = None,
        pool: AnalysisPool | None = None,
        hub: Hub | None = None,
        relay: RelayPool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.calls = calls
        self.relay = relay  # with relay workers: the calls and their analysis are in the workers
        self.pool = pool
        self.hub = hub
        self.mail: Any = None  # mail hook: monitor.mail.sender.MailSender (its stats())
        self.clock = clock
        self.lag = LoopLag()
        self.pauses: Counter[str] = Counter()  # reason -> pauses (a state record into paused)
        self.transitions: Counter[tuple[str, str]] = Counter()  # (previous, state)
        self.alerts: Counter[str] = Counter()
        self.calls_seen: set[str] = set()
        self.analysed_total = 0
        self.errors: Counter[str] = Counter()  # free-form counters: inc("bad_client") etc.
        self._history: dict[str, deque[tuple[float, int]]] = {}  # key -> (time, analysed)
        self._last_analysed: dict[str, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.started_at = clock()
        self.audit: Any = None  # monitor.store.audit_writer.AuditWriter: its stats()
        self.extra: list[Callable[[Exposition], None]] = []  # more figures (a cluster node's)

    # cheap updates (any code may call these)
    def inc(self, name: str, amount: int = 1) -> None:
        self.errors[name] += amount

    def observe_record(self, record: dict[str, Any]) -> None:
        """Count one timeline record published by a call (state changes, alerts)."""
        call_id = record.get("call_id")
        if isinstance(call_id, str):
            self.calls_seen.add(call_id)
        kind = record.get("kind")
        if kind == "state":
            state, previous = str(record.get("state")), str(record.get("previous"))
            self.transitions[(previous, state)] += 1
            if state == "paused":
                reasons = record.get("reasons") or ["unknown"]
                # a pause counts once for each reason that caused it
                for reason in reasons:
                    self.pauses[str(reason)] += 1
        elif kind == "alert":
            self.alerts[str(record.get("reason"))] += 1

    # lifecycle
    def start(self) -> None:
        """Start the loop-lag probe, the fps sampler and the hub listener (needs a running loop)."""
        if self._tasks:
            return
        self.lag.start()
        self._tasks.append(asyncio.ensure_future(self._sample_forever()))
        if self.hub is not None:
            self._tasks.append(asyncio.ensure_future(self._listen()))

    def stop(self) -> None:
        self.lag.stop()
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _listen(self) -> None:
        assert self.hub is not None
        while True:  # the hub drops a subscriber that falls 1000 records behind: subscribe again
            subscription = self.hub.subscribe()
            try:
                async for record in subscription:
                    self.observe_record(record)
            finally:
                subscription.close()
            await asyncio.sleep(0)

    async def _sample_forever(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_S)

    def sample(self) -> None:
        """Note the pool's analysed counts now (for frames per second and monotonic totals)."""
        stats = self._streams(self._analysis())
        now = self.clock()
        for key, entry in stats.items():
            analysed = entry.analysed
            self.analysed_total += max(0, analysed - self._last_analysed.get(key, 0))
            self._last_analysed[key] = analysed
            history = self._history.setdefault(key, deque())
            history.append((now, analysed))
            while len(history) > 2 and now - history[1][0] >= FPS_WINDOW_S:
                history.popleft()
        for key in list(self._history):
            if key not in stats:
                del self._history[key]
                self._last_analysed.pop(key, None)

    def fps(self, key: str) -> float:
        history = self._history.get(key)
        if not history or len(history) < 2:
            return 0.0
        (t0, n0), (t1, n1) = history[0], history[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _analysis(self) -> AnalysisStats | None:
        if self.pool is not None:
            return self.pool.stats()
        return self.relay.stats().analysis if self.relay is not None else None

    @staticmethod
    def _streams(analysis: AnalysisStats | None) -> dict[str, StreamStats]:
        return analysis.streams if analysis is not None else {}

    # the page
    def render(self, detail: bool = True) -> str:
        """The page; ``detail=False`` leaves out every series labelled with a call or participant
        id (for a client that did not present the metrics token)."""
        page = Exposition()
        calls = self.calls.stats() if self.calls is not None else None
        analysis = self._analysis()
        self._render_calls(page, calls.calls if calls is not None else (), detail)
        self._render_policy(page)
        self._render_analysis(page, calls.calls if calls is not None else (), analysis, detail)
        self._render_loop(page)
        self._render_queues(page, calls.pending_results if calls is not None else 0, analysis)
        if self.relay is not None:
            self._render_relay(page, self.relay.stats())
        if calls is not None:
            self._render_admission(page, calls)
        self._render_audit(page)
        if self.mail is not None:
            self._render_mail(page, self.mail.stats())
        for more in self.extra:
            more(page)
        return page.text()

    def _render_audit(self, page: Exposition) -> None:
        if self.audit is None:
            return
        stats = self.audit.stats()
        page.family("monitor_audit_records_total", "counter", "Audit records written, retried, given up.")
        for result in ("written", "retried", "failed"):
            page.sample("monitor_audit_records_total", getattr(stats, result), {"result": result})
        page.family("monitor_audit_records_waiting", "gauge", "Audit records queued for the writer.")
        page.sample("monitor_audit_records_waiting", stats.queued)
        page.family("monitor_audit_store_ok", "gauge", "1: audit records are written; 0: store error.")
        page.sample("monitor_audit_store_ok", int(stats.ok))

    def _render_mail(self, page: Exposition, mail: Any) -> None:
        """Mail to families (monitor/mail/sender.py): deliveries and failures since start, the queue."""
        page.family("monitor_mail_total", "counter", "Mail to families since start, by outcome.")
        for result in ("written", "sent", "retried", "failed"):
            page.sample("monitor_mail_total", getattr(mail, result), {"result": result})
        page.family("monitor_mail_queued", "gauge", "Mail waiting in the store's queue.")
        page.sample("monitor_mail_queued", mail.queued)

    def _render_admission(self, page: Exposition, calls: CallsStats) -> None:
        """Admission's answers to devices that would start a call (monitor/call/admission.py)."""
        admission = calls.admission
        if admission is None:
            return
        page.family(
            "monitor_call_starts_total", "counter", "Devices that would start a call, by admission's answer."
        )
        page.sample("monitor_call_starts_total", admission.admitted, {"result": "admitted"})
        page.sample("monitor_call_starts_total", admission.refused, {"result": "over_capacity"})
        if admission.max_calls is not None:  # --max-calls (else the measured load decides)
            page.family("monitor_max_calls", "gauge", "Calls one relay process may run (per relay worker).")
            page.sample("monitor_max_calls", admission.max_calls)

    def _render_relay(self, page: Exposition, relay: RelayStats) -> None:
        links = relay.links
        if not links:
            return
        page.family("monitor_relay_workers", "gauge", "Relay worker processes, by whether they are up.")
        up = sum(1 for link in links if link.up)
        page.sample("monitor_relay_workers", up, {"state": "up"})
        page.sample("monitor_relay_workers", len(links) - up, {"state": "down"})
        page.family("monitor_relay_worker_calls", "gauge", "Calls placed on each relay worker.")
        for link in links:
            page.sample("monitor_relay_worker_calls", link.calls, {"worker": str(link.index)})
        page.family("monitor_relay_worker_loop_lag_seconds", "gauge", "Relay worker loop lag (p99, 10 s).")
        for link in links:
            lag = round(link.lag_ms / 1000.0, 6)
            page.sample("monitor_relay_worker_loop_lag_seconds", lag, {"worker": str(link.index)})
        page.family("monitor_relay_worker_restarts_total", "counter", "Relay worker processes restarted.")
        for link in links:
            page.sample("monitor_relay_worker_restarts_total", link.restarts, {"worker": str(link.index)})

    def _render_calls(self, page: Exposition, calls: tuple[CallStats, ...], detail: bool = True) -> None:
        page.family("monitor_calls", "gauge", "Calls the server serves now, by state.")
        states = Counter(c.state for c in calls)
        for state in dict.fromkeys((*STATES, *sorted(states))):  # every known state, even at 0
            page.sample("monitor_calls", states[state], {"state": state})
        page.family("monitor_calls_seen_total", "counter", "Calls that published a record since start.")
        page.sample("monitor_calls_seen_total", len(self.calls_seen | {c.call_id for c in calls}))
        page.family("monitor_peers", "gauge", "Connected devices (signalling joined), by role.")
        page.family("monitor_peers_media_connected", "gauge", "Devices whose WebRTC media is connected.")
        roles: Counter[str] = Counter()
        media = 0
        for call in calls:
            for device in call.devices:
                roles[device.role] += 1
                media += device.media_connected
        for role in ("prisoner", "visitor"):
            page.sample("monitor_peers", roles.pop(role, 0), {"role": role})
        for role, count in sorted(roles.items()):
            page.sample("monitor_peers", count, {"role": role})
        page.sample("monitor_peers_media_connected", media)
        if not detail:  # per call and device: names who is on which call
            return
        page.family("monitor_forwarded_frames_total", "counter", "Frames sent to devices, live or slate.")
        for call in calls:
            for device in call.devices:
                sent: Counter[tuple[str, str]] = Counter()
                for track in device.tracks:
                    sent[(track.kind, "media")] += track.forwarded
                    sent[(track.kind, "filler")] += track.filled
                for (kind, what), count in sorted(sent.items()):
                    labels = {"call": call.call_id, "to": device.participant, "kind": kind, "what": what}
                    page.sample("monitor_forwarded_frames_total", count, labels)

    def _render_policy(self, page: Exposition) -> None:
        page.family(
            "monitor_pauses_total",
            "counter",
            "Calls going into paused, by the reasons they paused for (a reason added to a call already "
            "paused counts in monitor_alerts_total only).",
        )
        for reason, count in sorted(self.pauses.items()):
            page.sample("monitor_pauses_total", count, {"reason": reason})
        page.family("monitor_alerts_total", "counter", "Alerts for staff, by reason (every pause reason).")
        for reason, count in sorted(self.alerts.items()):
            page.sample("monitor_alerts_total", count, {"reason": reason})
        page.family("monitor_state_changes_total", "counter", "Call state transitions.")
        for (previous, state), count in sorted(self.transitions.items()):
            page.sample("monitor_state_changes_total", count, {"from": previous, "to": state})
        page.family("monitor_events_total", "counter", "Other counted events (Metrics.inc).")
        for name, count in sorted(self.errors.items()):
            page.sample("monitor_events_total", count, {"event": name})

    def _render_analysis(
        self,
        page: Exposition,
        calls: tuple[CallStats, ...],
        analysis: AnalysisStats | None,
        detail: bool = True,
    ) -> None:
        streams = self._streams(analysis)
        page.family("monitor_analysis_frames_total", "counter", "Frames analysed, all streams since start.")
        page.sample("monitor_analysis_frames_total", self.analysed_total)
        per_stream = (
            ("monitor_analysis_fps", "gauge", f"Frames analysed per second over {FPS_WINDOW_S:g} s."),
            ("monitor_analysis_stream_frames_total", "counter", "Frames analysed, per live stream."),
            ("monitor_analysis_seen_frames_total", "counter", "Frames offered to analysis (tap)."),
            ("monitor_analysis_dropped_frames_total", "counter", "Frames skipped by keep-latest."),
        )
        if detail:  # labelled with call and participant ids
            for family in per_stream:
                page.family(*family)
        page.family("monitor_analysis_in_flight", "gauge", "Streams with a frame in a worker now.")
        total_fps = 0.0
        busy = 0
        for call in calls:
            for tap in call.taps:
                labels = {"call": call.call_id, "stream": tap.participant}
                stream = streams.get(tap.key)
                analysed = stream.analysed if stream is not None else 0
                flying = 1 if stream is not None and stream.in_flight_t is not None else 0
                busy += flying
                seen = tap.seen
                dropped = max(0, seen - analysed - flying)
                fps = self.fps(tap.key)
                total_fps += fps
                if not detail:
                    continue
                page.sample("monitor_analysis_fps", round(fps, 3), labels)
                page.sample("monitor_analysis_stream_frames_total", analysed, labels)
                page.sample("monitor_analysis_seen_frames_total", seen, labels)
                page.sample("monitor_analysis_dropped_frames_total", dropped, labels)
        page.family("monitor_analysis_fps_overall", "gauge", "Frames analysed per second, all streams.")
        page.sample("monitor_analysis_fps_overall", round(total_fps, 3))
        page.sample("monitor_analysis_in_flight", busy)
        page.family("monitor_analysis_worker_restarts_total", "counter", "Analysis workers restarted.")
        restarts = analysis.restarts if analysis is not None else 0
        page.sample("monitor_analysis_worker_restarts_total", restarts)

    def _render_loop(self, page: Exposition) -> None:
        lag = self.lag
        page.family("monitor_loop_lag_seconds", "gauge", f"Event loop lag ({lag.interval:g} s probe).")
        page.sample("monitor_loop_lag_seconds", round(lag.last, 6), {"stat": "last"})
        page.sample("monitor_loop_lag_seconds", round(lag.window_max(), 6), {"stat": "max"})
        page.sample("monitor_loop_lag_seconds", round(lag.quantile(0.99), 6), {"stat": "p99"})
        page.sample("monitor_loop_lag_seconds", round(lag.quantile(0.5), 6), {"stat": "p50"})
        page.family("monitor_loop_lag_max_ever_seconds", "gauge", "Largest event loop lag since start.")
        page.sample("monitor_loop_lag_max_ever_seconds", round(lag.max_ever, 6))
        page.family("monitor_loop_lag_window_seconds", "gauge", "Window of the lag statistics.")
        page.sample("monitor_loop_lag_window_seconds", round(len(lag.samples) * lag.interval, 3))
        page.family("monitor_uptime_seconds", "gauge", "Seconds since the metrics registry started.")
        page.sample("monitor_uptime_seconds", round(self.clock() - self.started_at, 3))

    def _render_queues(self, page: Exposition, pending: int, analysis: AnalysisStats | None) -> None:
        hub = self.hub.stats() if self.hub is not None else None
        page.family("monitor_queue_depth", "gauge", "Items waiting in the server's internal queues.")
        backlog = hub.max_backlog if hub is not None else 0
        page.sample("monitor_queue_depth", backlog, {"queue": "hub_max_subscriber_backlog"})
        page.sample("monitor_queue_depth", pending, {"queue": "call_results"})
        for index, depth in enumerate(analysis.inboxes if analysis is not None else ()):
            page.sample("monitor_queue_depth", depth, {"queue": f"analysis_inbox_{index}"})
        page.family("monitor_hub_subscribers", "gauge", "Consumers of call records (consoles, audit).")
        page.sample("monitor_hub_subscribers", hub.subscribers if hub is not None else 0)


# ---- the route ----------------------------------------------------------------------------------


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def register_metrics(router: Router, registry: Metrics, token: str | None = None) -> None:
    """Serve ``registry`` at ``GET /metrics`` (see the module docstring for who may read it)."""
    from monitor.http import error_response, response

    async def metrics_page(request: HttpRequest) -> Any:
        if request.path != "/metrics":
            return error_response(404)
        if token:
            values = request.headers.get_all("Authorization")  # two of them: refused, never a 500
            scheme, _, given = (values[0] if len(values) == 1 else "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return response(
                    401,
                    '{"error": "send Authorization: Bearer <metrics token>"}',
                    "application/json",
                    (("WWW-Authenticate", 'Bearer realm="metrics"'),),
                )
            return response(200, registry.render(detail=True), CONTENT_TYPE)
        if not is_loopback(request.remote):
            return error_response(403, "metrics are served to loopback clients only (or set a metrics token)")
        # no token was configured, so nobody proved who they are: nothing that names a call or person
        return response(200, registry.render(detail=False), CONTENT_TYPE)

    router.get("/metrics", metrics_page)


def register_server_metrics(server: Any) -> Metrics:
    """The hook ``monitor.server.serve.Server`` calls while registering its routes: a registry over its
    calls, pool and hub, started, with /metrics on its router (token: ``server.metrics_token``)."""
    registry = Metrics(calls=server.calls, pool=server.pool, hub=server.hub, relay=server.relay)
    registry.mail = getattr(server, "mail", None)  # mail hook
    token = server.metrics_token or os.environ.get(TOKEN_ENV) or None
    register_metrics(server.router, registry, token)
    registry.start()
    return registry


__all__ = [
    "CONTENT_TYPE",
    "Exposition",
    "Metrics",
    "add_metrics_arguments",
    "is_loopback",
    "register_metrics",
    "register_server_metrics",
]

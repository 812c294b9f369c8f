"""`monitor serve`: one process, one port: join pages, signalling WebSocket, relay, console.

:class:`Server` wires the parts (usable in-process by tests and benchmarks); the command itself
(flags, the demo, printing the links, running until a signal) is ``command.py``.

With a store (what the CLI always gives), the store is the source of the calls. At start, calls
that a dead server left running are marked interrupted; ``--booking``/``--demo`` bookings are
imported (so the console shows them) and their printed links are store tokens, the only tokens
that join (a call's own in-memory seat tokens are not accepted: nobody could revoke them). Every
booked call whose join window opens within the refresh horizon is loaded (a ``Call`` in memory), again every
``refresh_s``, and at once when someone presents a store token of a call not loaded yet (so a
call booked with `monitor book` while the server runs works without a restart). Ended calls are
dropped from memory and never served again. A call rebuilt after a restart takes over from its
audit records the pause reasons that still need staff (``monitor.call.held``). A call whose audit
records cannot be written (the writer's health hook) pauses with ``store_error`` until they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import serve

from monitor import console, family
from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.call.handle import CallHandle
from monitor.call.seats import JOIN_EARLY_S, JoinRefused, too_early
from monitor.errors import UserError
from monitor.http import HttpRequest, Router, error_response, response
from monitor.hub import Hub
from monitor.media.forward import slate_packets
from monitor.server import capacity
from monitor.server.fail_closed import FailClosed
from monitor.server.signalling import SignallingServer
from monitor.store.audit_recorder import HubRecorder
from monitor.workers.analysis_pool import AnalysisPool
from policies.booking import Booking
from policies.config import PolicyConfig
from signalling.messages import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

WEB_FILES = {
    "join.js": "text/javascript; charset=utf-8",
    "join.css": "text/css; charset=utf-8",
}


#: How often the server re-reads the store for newly booked calls.
REFRESH_S = 30.0
#: How long a closing WebSocket waits for the peer's close frame before dropping the TCP connection
#: (websockets' default is 10 s: a client that never answers the close would hold it that long).
CLOSE_TIMEOUT_S = 1.0
TOKEN_REFUSALS = {
    "unknown": ("bad_token", "this join link is not valid"),
    "revoked": ("bad_token", "this join link has been withdrawn; ask for a new one"),
    "expired": ("call_over", "this call has ended"),
}


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound now: ``monitor serve`` binds before it touches the
    store, so a start that cannot listen (a busy port) changes nothing."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(100)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class Server:
    def __init__(
        self,
        bookings: list[Booking],
        config: PolicyConfig,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        record_dir: Path | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        analysis_workers: int = 1,
        wall_clock: Callable[[], float] = time.time,
        ssl_context: ssl.SSLContext | None = None,
        store: Any = None,
        refresh_s: float = REFRESH_S,
        relay_workers: int = 0,
        ice_hosts: list[str] | None = None,
        limits: Any = None,
        origins: tuple[str, ...] = (),
        forward: bool = True,
        sock: socket.socket | None = None,
        mail: Any = None,
        cluster: Any = None,
        admit_by_load: bool = False,
    ) -> None:
        self.bookings = bookings
        self.sock = sock  # bound already (``listen_socket``); else start() binds host:port first
        self.config = config
        self.host = host
        self.port = port
        self.record_dir = record_dir
        self.ice_servers = ice_servers or []
        self.analysis_workers = analysis_workers
        self.wall_clock = wall_clock
        self.ssl_context = ssl_context
        # browser origins allowed on the WebSockets (empty: the server's own, scheme://Host)
        self.origins = origins
        self.forward = forward  # False: calls decode and re-encode what they relay (monitor/call/peer.py)
        self.store = store  # Store: booked calls, join tokens, the console and its audit
        self.mail = mail  # monitor.mail.sender.MailSender: mail to families, sent in the background
        self.refresh_s = refresh_s
        self.relay_workers = relay_workers  # > 0: calls run in relay worker processes (relay_pool.py)
        self.ice_hosts = ice_hosts  # their ICE host addresses (None: what aioice offers here)
        self.relay: Any = None  # monitor.relay_workers.pool.RelayPool when relay_workers > 0
        self.interrupted: list[str] = []  # calls a dead server left running (marked at start)
        self._console_recorder: HubRecorder | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._finished: set[str] = set()  # ended calls: never loaded again by this process
        self._unloadable: set[str] = set()  # stored bookings that failed to load (logged once)
        self._links: list[dict[str, str]] | None = None
        self.hub = Hub()
        # held pauses, store faults, recording turned off (``fail_closed.py``)
        self.fail_closed = FailClosed(store, self.hub, config)
        self.calls: Calls[CallHandle[Any]] = Calls(
            resolver=self._resolve_token if store is not None else None
        )
        from monitor.call.admission import DEFAULT_MAX_CALLS, Admission, Limits  # capacity hook

        # monitor.call.admission.Limits: max_calls is per relay process (per worker with relay workers,
        # whose admission, monitor.relay_workers.pool.WorkerAdmission, is set once the workers are
        # started). ``admit_by_load`` (what `monitor serve` does): new calls are admitted by this
        # server's measured load; else (a server embedded in a test or benchmark, on a machine it
        # shares) by the fixed limit alone, DEFAULT_MAX_CALLS unless ``limits`` says otherwise.
        self.limits: Limits = limits or (Limits() if admit_by_load else Limits(max_calls=DEFAULT_MAX_CALLS))
        self.calls.admission = Admission(self.limits, measure=self.measured if admit_by_load else None)
        self.load: Any = None  # monitor.load.LoadProbe: this server's measured load (made in _routes())
        self.router = Router()
        self.pool: AnalysisPool | None = None
        self._ws: WsServer | None = None
        self.metrics_token: str | None = None  # metrics hook: /metrics bearer token (metrics.py)
        self.metrics: Any = None  # metrics hook: monitor.server.metrics.Metrics, made in _routes()
        # the audit log the console's recorder writes (AuditLog; its writer has health() and stats())
        self.audit: Any = None
        # e-mail to families (monitor.store.family_common.Mailer); None: FamilyMail on ``mail`` if given
        self.mailer: Any = None
        self.family: family.FamilyApp | None = None  # the /family routes, with a store
        # cluster hook: monitor.cluster.node.ClusterNode (``--redis``): calls are placed across nodes
        self.cluster: Any = cluster
        self.public_base: str | None = None  # this node's URL for the other nodes (default base_url)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def public_url(self) -> str:
        """Where families and staff reach the server: the first ``--origin``, else its own URL."""
        return self.origins[0] if self.origins else self.base_url

    def node_url(self) -> str:
        """Where the other nodes of a cluster (and redirected devices) reach this one."""
        return self.public_base or self.base_url

    async def start(self) -> None:
        if self.sock is None:  # before anything else: a server that cannot listen changes nothing
            self.sock = listen_socket(self.host, self.port)
        self.port = self.sock.getsockname()[1]
        # the pause slates as VP8, encoded in a thread while the workers start (seconds of CPU)
        slates = asyncio.ensure_future(asyncio.to_thread(slate_packets)) if self.forward else None
        if self.store is not None:  # a chain from before keyed chains is keyed now, or start fails
            from monitor.store.audit import AuditLog

            AuditLog(self.store).ensure_keyed()
        if self.relay_workers > 0:
            from monitor.relay_workers.pool import RelayPool

            self.relay = RelayPool(
                self.relay_workers,
                hub=self.hub,
                config=self.config,
                record_dir=self.record_dir,
                ice_servers=self.ice_servers,
                analysis_workers=self.analysis_workers,
                ice_hosts=self.ice_hosts,
            )
            await self.relay.start()
            from monitor.relay_workers.pool import WorkerAdmission  # capacity hook: admission per worker

            self.calls.admission = WorkerAdmission(self.relay, self.limits, self.calls.get)
        elif self.analysis_workers > 0:
            self.pool = AnalysisPool(self.analysis_workers, self.calls.on_result, self.calls.on_failure)
            await self.pool.start()
        if slates is not None:
            await slates
        if self.store is not None:
            from monitor.admin import import_booking

            self.interrupted = self.store.mark_interrupted()
            for booking in self.bookings:
                import_booking(self.store, booking)
        for booking in self.bookings:
            if self.fail_closed.ended(booking.call_id):  # an ended call stays ended, given again or not
                self._finished.add(booking.call_id)
                log.warning("call %s has ended: not served again", booking.call_id)
                continue
            self.add_booking(booking)
        if self.store is not None:
            self.refresh()
            self._refresher = asyncio.ensure_future(self._refresh_forever())
        self._routes()  # no await since the calls were added: their first records reach the audit log
        self.fail_closed.listening = True
        for call in self.calls:
            self.fail_closed.note_unrecorded(call)
        if self.cluster is not None:  # cluster hook: join the other nodes (monitor/cluster/node.py)
            await self.cluster.start(self)  # its figures join /metrics
        self._ws = await serve(
            self.router.handle_websocket,
            sock=self.sock,
            process_request=self.router.process_request,
            max_size=MAX_FRAME_BYTES,
            ssl=self.ssl_context,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        if self.mail is not None:
            self.mail.start()

    def add_booking(self, booking: Booking) -> CallHandle[Any]:
        """Serve one more call (at start, or while running). With a store the booking is put in it
        (if new) and only the store's join tokens join the call: the call's own in-memory tokens,
        which nobody was given and nobody could revoke, are not accepted."""
        if self.store is not None:
            from monitor.admin import import_booking

            import_booking(self.store, booking)
        held = self.fail_closed.held(booking.call_id)
        if self.relay is not None:  # the call runs in a worker; this is its stand-in (remote_call.py)
            from monitor.relay_workers.remote_call import RemoteCall

            remote = RemoteCall(
                booking,
                self.config,
                wall_clock=self.wall_clock,
                hub=self.hub,
                ice_servers=self.ice_servers,
                held=held,
            )
            remote.restarted = self.fail_closed.rebuilt_after(booking.call_id)
            self.calls.add(remote, own_tokens=self.store is None)
            self.relay.place(remote)
            self.fail_closed.note_unrecorded(remote)
            return remote
        carried = self.fail_closed.carried(booking.call_id, held)
        call = Call(
            booking,
            self.config,
            wall_clock=self.wall_clock,
            pool=self.pool,
            hub=self.hub,
            record_dir=self.record_dir,
            ice_servers=self.ice_servers,
            forward=self.forward,
            carried=carried,
        )
        self.calls.add(call, own_tokens=self.store is None)
        call.start()
        self.fail_closed.note_unrecorded(call)
        return call

    # ---- calls from the store -------------------------------------------------------------------
    def refresh(self) -> list[str]:
        """Drop ended calls; load every stored call whose join window opens before the next
        refresh (and that has not ended). Returns the call ids loaded. A node of a cluster loads
        nothing ahead: a call is loaded on the node placement chooses, when a device joins."""
        assert self.store is not None
        for call in self.calls:
            if call.ended.is_set():
                self._finished.add(call.call_id)
                self.calls.remove(call.call_id)
        if self.cluster is not None:
            return []
        now = self.wall_clock()
        horizon = now + JOIN_EARLY_S + self.refresh_s + 60.0
        loaded = []
        for row in self.store.bookings_between(now, horizon):
            if self.calls.get(row.call_id) is None and self._load(row.call_id) is not None:
                loaded.append(row.call_id)
        return loaded

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                self.refresh()
            except Exception:  # a store hiccup must not stop the server serving the calls it has
                log.exception("reading booked calls from the store failed")

    def _load(self, call_id: str) -> CallHandle[Any] | None:
        """The stored call, loaded now; None when it has ended or cannot be served (logged)."""
        assert self.store is not None
        from monitor.admin import stored_booking
        from policies.booking import BookingError

        if call_id in self._finished or call_id in self._unloadable:
            return None
        row = self.store.call(call_id)
        if row is not None and row.state == "ended":
            return None
        try:
            booking = stored_booking(self.store, call_id, self.config)
        except (UserError, BookingError) as exc:
            self._unloadable.add(call_id)
            log.error("booked call %s cannot be served: %s", call_id, exc)
            return None
        return self.add_booking(booking)

    def _resolve_token(self, token: str) -> tuple[CallHandle[Any], str]:
        """A store join token: (its call, loaded if need be; its participant), else JoinRefused."""
        assert self.store is not None
        grant, status = self.store.join_token_status(token)
        if grant is None or status in TOKEN_REFUSALS:
            code, message = TOKEN_REFUSALS.get(status, TOKEN_REFUSALS["unknown"])
            raise JoinRefused(code, message)
        if status == "too_early":
            raise too_early(datetime.fromtimestamp(grant.not_before, UTC))
        call = self.calls.get(grant.call_id) or self._load(grant.call_id)
        if call is None:
            raise JoinRefused("call_over", "this call has ended")
        seat = call.seat_of(grant.participant)
        if seat is None or seat.role.value != grant.role:
            raise JoinRefused("bad_token", "this join link is not valid")
        return call, grant.participant

    def _link_refusal(self, token: str) -> tuple[str, str] | None:
        """Why a joined device's store link no longer works (withdrawn, expired), else None."""
        assert self.store is not None
        _, status = self.store.join_token_status(token)
        return TOKEN_REFUSALS.get(status)

    def _routes(self) -> None:
        link_refusal = self._link_refusal if self.store is not None else None
        secure = self.ssl_context is not None
        self.signalling = signalling = SignallingServer(
            self.calls, link_refusal, origins=self.origins, secure=secure
        )
        signalling.router = self.cluster  # cluster hook: joins of calls running on other nodes
        self.router.ws("/ws/call", signalling.handle, signalling.admit)  # another Origin: HTTP 403
        self.router.get("/join/", self._join_page)
        self.router.get("/web/", self._web_file)
        self.router.get("/", self._index)
        from monitor.server.metrics import register_server_metrics  # metrics hook: GET /metrics

        self.metrics = register_server_metrics(self)
        self.load = capacity.start_probe(self)  # capacity hook: what admission judges (admission.py)
        if self.store is not None:  # /console routes on the same port
            mailer = self._family_mailer()
            # the console writes every record published on the hub to the audit log
            self._console_recorder = console.register(
                self.router,
                store=self.store,
                hub=self.hub,
                calls=self.calls if self.cluster is None else self.cluster.view(self.calls, self.store),
                secure=secure,
                record_dir=self.record_dir,
                origins=self.origins,
                desk=console.DeskParts(self.config, mailer, self.public_url),
            )
            self.audit = self._console_recorder.log if self._console_recorder is not None else None
            self.metrics.audit = self.audit.writer if self.audit is not None else None  # metrics hook
            if self.audit is not None:  # records that cannot be written pause their calls
                self.audit.on_health(lambda health: self.fail_closed.store_health(health, self.calls))
            self.family = family.register(  # /family: the families' pages and socket
                self.router,
                store=self.store,
                config=self.config,
                base_url=self.public_url,
                origins=self.origins,
                secure=secure,
                mailer=mailer,
            )

    # ---- measured load (admission, cluster placement) --------------------------------------------
    def measured(self) -> Any:
        """This server's measured load now (``monitor.call.admission.Measured``)."""
        return capacity.measured(self.load)

    def _family_mailer(self) -> Any:
        """What the family pages and the console's families desk mail with: the one given
        (``mailer``), else the mail queue when the server has a sender, else nothing (logged)."""
        if self.mailer is None and self.mail is not None:
            from monitor.mail.family_mail import FamilyMail

            self.mailer = FamilyMail(
                self.store,
                self.public_url,
                join_opens_minutes=self.config.join_opens_minutes,
                wake=self.mail.wake,
            )
        if self.mailer is None:
            from monitor.family.mailer import UnsentMail

            self.mailer = UnsentMail()
        return self.mailer

    async def _index(self, request: HttpRequest) -> Any:
        if request.path != "/":
            return error_response(404)
        return response(
            200, "Prison call monitor. Open your join link; families: /family; staff: /console.\n"
        )

    async def _join_page(self, request: HttpRequest) -> Any:
        token = request.path.removeprefix("/join/")
        if not token or "/" in token:
            return error_response(404)
        page = resources.files("monitor").joinpath("web/join.html").read_bytes()
        return response(200, page, "text/html; charset=utf-8")

    async def _web_file(self, request: HttpRequest) -> Any:
        name = request.path.removeprefix("/web/")
        if name not in WEB_FILES:
            return error_response(404)
        data = resources.files("monitor").joinpath(f"web/{name}").read_bytes()
        return response(200, data, WEB_FILES[name])

    def links(self) -> list[dict[str, str]]:
        """One line per join link of the bookings given to the server. With a store: store tokens,
        issued once per server run (earlier links stay valid); without: the calls' own tokens."""
        if self.store is not None:
            if self._links is None:
                from monitor.admin import join_links

                self._links = [
                    line
                    for booking in self.bookings
                    for line in join_links(self.store, booking, self.base_url, revoke_earlier=False)
                ]
            return list(self._links)
        lines = []
        for call in self.calls:
            for token, seat in call.seats.items():
                lines.append(
                    {
                        "call_id": call.call_id,
                        "role": seat.role.value,
                        "participant": seat.participant,
                        "url": f"{self.base_url}/join/{token}",
                    }
                )
        return lines

    async def stop(self) -> None:
        if self.cluster is not None:  # leave the cluster first: no new call is placed here
            await self.cluster.stop()
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.mail is not None:
            await self.mail.stop()
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.wait_closed(), 5)
        elif self.sock is not None:  # bound, never served
            self.sock.close()
        await self.calls.close()
        if self.relay is not None:
            await self.relay.stop()
        if self.pool is not None:
            await self.pool.stop()
        if self.load is not None:
            self.load.stop()
        if self.metrics is not None:  # metrics hook
            self.metrics.stop()
        if self._console_recorder is not None:
            self._console_recorder.stop()
        if self.family is not None:
            self.family.stop()

"""`monitor serve`: one process, one port: join pages, signalling WebSocket, relay, console.

:class:`Server` wires the parts (usable in-process by tests and benchmarks); :func:`run_serve` is
the CLI handler: it loads the bookings and policy, prints one JSON line per join link and the
console URL, and runs until SIGINT/SIGTERM, then closes every call and worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import signal
import ssl
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server as WsServer
from websockets.asyncio.server import serve

from monitor.analysis_pool import AnalysisPool
from monitor.call import Call, Calls
from monitor.errors import UserError
from monitor.http import HttpRequest, Router, error_response, response
from monitor.hub import Hub
from policies.booking import Booking
from policies.config import PolicyConfig, load_policy
from signalling.messages import MAX_FRAME_BYTES
from signalling.server import SignallingServer

log = logging.getLogger(__name__)

DEMO_BOOKING = Path(__file__).resolve().parent.parent / "fixtures" / "bookings" / "clean" / "booking.json"
DEMO_HINT = (
    "Demo call: open the prisoner and the visitor links (two browser windows, camera allowed). The visitor "
    "booked is the man in fixtures/clips/clean.webm, so your own face is an unbooked face and the call "
    "pauses: that is the monitor working. To see it go live, feed Chromium his clip as its camera: "
    "chromium --use-fake-device-for-media-stream --use-file-for-fake-video-capture=clean.y4m "
    "(make it with: .venv/bin/python -m signalling.client fixtures/clips/clean.webm clean.y4m). Ctrl-C stops."
)
WEB_FILES = {
    "join.js": "text/javascript; charset=utf-8",
    "join.css": "text/css; charset=utf-8",
}


def set_ice_host_addresses(addresses: list[str]) -> None:
    """Make aioice offer exactly these host candidates (it never offers 127.0.0.1 by itself)."""
    import aioice.ice

    chosen = list(addresses)

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = get_host_addresses


def ice_servers_from(urls: list[str]) -> list[dict[str, Any]]:
    """``--ice-server`` values: ``stun:host:port`` or ``turn:user:password@host:port``."""
    servers: list[dict[str, Any]] = []
    for url in urls:
        scheme, _, rest = url.partition(":")
        if scheme not in ("stun", "turn", "turns") or not rest:
            raise UserError(f"--ice-server {url!r}: expected stun:HOST:PORT or turn:USER:PASSWORD@HOST:PORT")
        if "@" in rest:
            credentials, host = rest.rsplit("@", 1)
            user, _, password = credentials.partition(":")
            servers.append({"urls": f"{scheme}:{host}", "username": user, "credential": password})
        else:
            servers.append({"urls": url})
    return servers


def demo_booking(config: PolicyConfig, now: datetime) -> Booking:
    """The clean fixture booking moved to start now (rounded down to the minute), same slot length."""
    from monitor.bookings import load_booking

    if not DEMO_BOOKING.is_file():
        raise UserError(f"--demo needs the fixture booking {DEMO_BOOKING} (run from a source checkout)")
    booking = load_booking(DEMO_BOOKING, config)
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    return dataclasses.replace(
        booking,
        call_id=f"demo-{start:%H%M}",
        starts_at=start,
        ends_at=start + (booking.ends_at - booking.starts_at),
    )


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
    ) -> None:
        self.bookings = bookings
        self.config = config
        self.host = host
        self.port = port
        self.record_dir = record_dir
        self.ice_servers = ice_servers or []
        self.analysis_workers = analysis_workers
        self.wall_clock = wall_clock
        self.ssl_context = ssl_context
        self.store = store  # monitor.store.Store: the staff console (which also audits hub records)
        self._console_recorder: Any = None
        self.hub = Hub()
        self.calls = Calls()
        self.router = Router()
        self.pool: AnalysisPool | None = None
        self._ws: WsServer | None = None
        self.metrics_token: str | None = None  # metrics hook: /metrics bearer token (monitor/metrics.py)
        self.metrics: Any = None  # metrics hook: monitor.metrics.Metrics, made in _routes()

    @property
    def base_url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        if self.analysis_workers > 0:
            self.pool = AnalysisPool(self.analysis_workers, self.calls.on_result, self.calls.on_failure)
            await self.pool.start()
        for booking in self.bookings:
            self.add_booking(booking)
        self._routes()
        self._ws = await serve(
            self.router.handle_websocket,
            self.host,
            self.port,
            process_request=self.router.process_request,
            max_size=MAX_FRAME_BYTES,
            ssl=self.ssl_context,
        )
        if self.port == 0:
            self.port = next(iter(self._ws.sockets)).getsockname()[1]

    def add_booking(self, booking: Booking) -> Call:
        """Serve one more call (at start, or while running)."""
        call = Call(
            booking,
            self.config,
            wall_clock=self.wall_clock,
            pool=self.pool,
            hub=self.hub,
            record_dir=self.record_dir,
            ice_servers=self.ice_servers,
        )
        self.calls.add(call)
        call.start()
        return call

    def _routes(self) -> None:
        signalling = SignallingServer(self.calls)
        self.router.ws("/ws/call", signalling.handle)
        self.router.get("/join/", self._join_page)
        self.router.get("/web/", self._web_file)
        self.router.get("/", self._index)
        from monitor.metrics import register_server_metrics  # metrics hook: GET /metrics

        self.metrics = register_server_metrics(self)
        try:
            console = importlib.import_module("monitor.console")
        except ImportError:
            console = None
        register = getattr(console, "register", None)
        if register is not None and self.store is not None:  # /console routes on the same port
            secure = self.ssl_context is not None
            # the console writes every record published on the hub to the audit log
            self._console_recorder = register(
                self.router, store=self.store, hub=self.hub, calls=self.calls, secure=secure
            )

    async def _index(self, request: HttpRequest) -> Any:
        if request.path != "/":
            return error_response(404)
        return response(200, "Prison call monitor. Open your join link, or /console for staff.\n")

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
        if self._ws is not None:
            self._ws.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.wait_closed(), 5)
        await self.calls.close()
        if self.pool is not None:
            await self.pool.stop()
        if self.metrics is not None:  # metrics hook
            self.metrics.stop()
        stop = getattr(self._console_recorder, "stop", None)
        if stop is not None:
            result = stop()
            if asyncio.iscoroutine(result):
                await result


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.certfile and not args.keyfile:
        return None
    if not (args.certfile and args.keyfile):
        raise UserError("--certfile and --keyfile go together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UserError(f"--certfile/--keyfile: cannot load the certificate: {exc}") from None
    return context


def _default_ice_hosts(listen_host: str) -> list[str]:
    import aioice.ice

    found = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    return (["127.0.0.1"] if listen_host in ("127.0.0.1", "localhost") else []) + list(found)


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from monitor.bookings import load_booking

    config = load_policy(args.policy)
    bookings = [load_booking(path, config) for path in args.booking]
    if args.demo:
        bookings.append(demo_booking(config, datetime.now(UTC)))
    if not bookings:
        raise UserError("nothing to serve: give --booking FILE (repeatable) or --demo")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be 0..65535")
    if args.analysis_workers < 1:
        raise UserError("--analysis-workers: must be at least 1")
    record_dir = Path(args.record) if args.record else None
    if record_dir is not None:
        try:
            record_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"--record {record_dir}: cannot create the directory: {exc.strerror}") from None
    set_ice_host_addresses(args.ice_host or _default_ice_hosts(args.host))
    from monitor.store import Store, default_db_path

    store = Store(args.db or default_db_path())
    server = Server(
        bookings,
        config,
        host=args.host,
        port=args.port,
        record_dir=record_dir,
        ice_servers=ice_servers_from(args.ice_server),
        analysis_workers=args.analysis_workers,
        ssl_context=_ssl_context(args),
        store=store,
    )
    server.metrics_token = getattr(args, "metrics_token", None)  # metrics hook: --metrics-token
    try:
        asyncio.run(_run(server))
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    finally:
        store.close()
    return 0


async def _run(server: Server) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        for line in server.links():
            print(json.dumps(line), flush=True)
        print(json.dumps({"console": f"{server.base_url}/console"}), flush=True)
        if any(call.call_id.startswith("demo-") for call in server.calls):
            print(DEMO_HINT, file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await server.stop()


"""The `monitor serve` command: its flags checked, the store opened, the demo booked, a
:class:`~monitor.server.serve.Server` run until SIGINT/SIGTERM.

It prints one JSON line per join link and one for the console (with the demo's staff account),
then closes every call and worker when stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import ssl
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.media import patches
from monitor.server.serve import Server, listen_socket
from policies.booking import Booking
from policies.config import PolicyConfig, load_policy

log = logging.getLogger(__name__)

#: The folder of the data directory calls are recorded into unless ``--record DIR`` moves it.
RECORDINGS = "recordings"
_NODE = re.compile(r"^[A-Za-z0-9._-]{1,63}$")
DEMO_BOOKING = Path(__file__).resolve().parents[2] / "fixtures" / "bookings" / "clean" / "booking.json"
DEMO_HINT = (
    "Demo call: open the prisoner and the visitor links (two browser windows, camera allowed). The visitor "
    "booked is the man in fixtures/clips/clean.webm, so your own face is an unbooked face and the call "
    "pauses: that is the monitor working. To see it go live, feed Chromium his clip as its camera: "
    "chromium --use-fake-device-for-media-stream --use-file-for-fake-video-capture=clean.y4m "
    "(make it with: .venv/bin/python -m signalling.client fixtures/clips/clean.webm clean.y4m). Ctrl-C stops."
)


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
    """The clean fixture booking moved to start now (rounded down to the minute), same slot length.
    Its call id names the day and minute (``demo-20261128-1552``), so runs never collide."""
    from monitor.bookings import load_booking

    if not DEMO_BOOKING.is_file():
        raise UserError(f"--demo needs the fixture booking {DEMO_BOOKING} (run from a source checkout)")
    booking = load_booking(DEMO_BOOKING, config)
    start = now.astimezone(UTC).replace(second=0, microsecond=0)
    return dataclasses.replace(
        booking,
        call_id=f"demo-{start:%Y%m%d-%H%M}",
        starts_at=start,
        ends_at=start + (booking.ends_at - booking.starts_at),
    )


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


def origins_from(values: list[str]) -> tuple[str, ...]:
    """``--origin`` values: exactly what a browser sends as ``Origin`` (scheme://host[:port])."""
    from urllib.parse import urlsplit

    origins = []
    for value in values:
        parts = urlsplit(value)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or (parts.path not in ("", "/") or parts.query or parts.fragment or parts.username)
        ):
            raise UserError(
                f"--origin {value!r}: expected http(s)://HOST[:PORT], e.g. https://calls.example.org"
            )
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _default_ice_hosts(listen_host: str) -> list[str]:
    import aioice.ice

    found = aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)
    return (["127.0.0.1"] if listen_host in ("127.0.0.1", "localhost") else []) + list(found)


def metrics_token(args: argparse.Namespace) -> str | None:
    """``--metrics-token-file``: the token is the file's first line (never argv, where `ps` shows
    it); else ``$MONITOR_METRICS_TOKEN`` (read when the routes are registered)."""
    path = getattr(args, "metrics_token_file", None)
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--metrics-token-file {path}: cannot read it: {exc}") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UserError(f"--metrics-token-file {path}: the token must be one line of 16 or more characters")
    return token


def set_niceness(nice: int | None) -> None:
    """``--nice N``: this process's scheduling niceness, and so that of every thread and worker
    process it starts afterwards (they inherit it). Call it before any thread starts: Linux keeps a
    niceness per thread."""
    if nice is None:
        return
    if not -20 <= nice <= 19:
        raise UserError(f"--nice {nice}: must be -20..19")
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        now = os.getpriority(os.PRIO_PROCESS, 0)
        raise UserError(
            f"--nice {nice}: not permitted (running at {now}); a lower niceness needs CAP_SYS_NICE or a "
            "raised RLIMIT_NICE (systemd: Nice= or LimitNICE=)"
        ) from None


def node_name(given: str | None) -> str:
    """``--node``: this server's name on a shared PostgreSQL database (default: the host name)."""
    name = given if given is not None else socket.gethostname()
    if not _NODE.match(name):
        raise UserError(f"--node {name!r}: use 1-63 letters, digits, '.', '_' or '-'")
    return name


def run_serve(args: argparse.Namespace) -> int:
    """Everything that can fail is checked, and the port bound and the database locked, before
    the store is touched: a start that fails changes nothing (no password rotated, no call
    booked, no audit record)."""
    set_niceness(getattr(args, "nice", None))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from monitor.bookings import load_booking

    config = load_policy(args.policy)
    bookings = [load_booking(path, config) for path in args.booking]
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be 0..65535")
    if args.analysis_workers < 1:
        raise UserError("--analysis-workers: must be at least 1")
    relay_workers = getattr(args, "relay_workers", 0)
    if relay_workers < 0:
        raise UserError(f"--relay-workers {relay_workers}: must be 0 (calls in this process) or more")
    from monitor.call.admission import DEFAULT_MAX_CPU, Limits

    max_calls = getattr(args, "max_calls", None)
    if max_calls is not None and max_calls < 1:
        raise UserError(f"--max-calls {max_calls}: must be at least 1 (calls per relay process)")
    max_cpu = getattr(args, "max_cpu", DEFAULT_MAX_CPU)
    if not 0 < max_cpu <= 1:
        raise UserError(f"--max-cpu {max_cpu}: a share of the machine's cores, more than 0 and at most 1")
    origins = origins_from(getattr(args, "origin", None) or [])
    limits = Limits(max_calls=max_calls, max_cpu=max_cpu)
    cluster, node_url = _cluster(args, limits)
    ice_servers = ice_servers_from(args.ice_server)
    ssl_context = _ssl_context(args)
    token = metrics_token(args)
    ice_hosts = args.ice_host or _default_ice_hosts(args.host)
    patches.set_ice_host_addresses(ice_hosts)
    from monitor.mail.settings import check_mail_flags

    check_mail_flags(args)
    from monitor.admin.common import store_location
    from monitor.store.database import Store
    from monitor.store.lock import ServeLock

    if args.record and args.no_record:
        raise UserError("--record DIR and --no-record: give one or the other")
    where = store_location(getattr(args, "db", None))
    node = node_name(getattr(args, "node", None)) if where.is_postgresql else None
    sock = listen_socket(args.host, args.port)
    lock = ServeLock(where, node or "")
    try:
        lock.acquire()
        record_dir = _record_dir(args, where.path)
        store = Store(where, node=node)
    except BaseException:
        sock.close()
        lock.release()
        raise
    try:
        from monitor.mail.settings import mail_sender

        mail = mail_sender(args, store)
        staff, family = _demo(store, config, bookings) if args.demo else (None, None)
        if not bookings and not store.bookings_between(time.time(), float("inf")):
            raise UserError(
                f"nothing to serve: {store.name} has no calls booked from now on; book one with "
                "`monitor book`, or give --booking FILE (repeatable) or --demo"
            )
        server = Server(
            bookings,
            config,
            host=args.host,
            port=args.port,
            record_dir=record_dir,
            ice_servers=ice_servers,
            analysis_workers=args.analysis_workers,
            ssl_context=ssl_context,
            store=store,
            relay_workers=relay_workers,
            ice_hosts=ice_hosts,
            limits=limits,
            origins=origins,
            sock=sock,
            mail=mail,
            cluster=cluster,
            admit_by_load=True,
        )
        server.metrics_token = token  # metrics hook: --metrics-token-file
        server.public_base = node_url  # cluster hook: where the other nodes reach this one
        if record_dir is None:  # --no-record: said loudly, and in every call's audit records
            log.warning("recording is off (--no-record): calls are not recorded")
            server.fail_closed.unrecorded = "monitor serve --no-record"
        asyncio.run(_run(server, staff, family))
    finally:
        sock.close()
        store.close()
        lock.release()
    return 0


def _cluster(args: argparse.Namespace, limits: Any) -> tuple[Any, str | None]:
    """``--redis``: this server's ClusterNode (None without), and ``--node-url`` (checked)."""
    node_url = None
    if getattr(args, "node_url", None):
        try:
            node_url = origins_from([args.node_url])[0]
        except UserError as exc:  # the same rule as --origin: scheme://host[:port]
            raise UserError(str(exc).replace("--origin", "--node-url", 1)) from None
    redis_url = getattr(args, "redis", None)
    if not redis_url:
        if node_url is not None:
            raise UserError("--node-url is for a node of several (give --redis too)")
        return None, None
    from urllib.parse import urlsplit

    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise UserError("--redis: expected redis://HOST:PORT/DB (rediss:// for TLS, unix:///PATH)")
    from monitor.cluster.node import ClusterNode, Settings

    name = node_name(getattr(args, "node", None))  # the same name the store writes on its calls
    return ClusterNode(Settings(redis_url, name, routing=getattr(args, "routing", "proxy")), limits), node_url


def _record_dir(args: argparse.Namespace, db_path: Path) -> Path | None:
    """Where calls are recorded: ``--record DIR``, else ``<data dir>/recordings`` beside the
    database; None only with ``--no-record``."""
    if args.no_record:
        return None
    if args.record:
        record_dir, flag = Path(args.record), f"--record {args.record}"
    else:
        from monitor.store.database import data_dir_of

        record_dir = data_dir_of(db_path) / RECORDINGS
        flag = f"recording into {record_dir} (the default; --record DIR moves it)"
    try:
        record_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{flag}: cannot create the directory: {exc.strerror}") from None
    return record_dir


def _demo(
    store: Any, config: PolicyConfig, bookings: list[Booking]
) -> tuple[tuple[str, str], tuple[str, str]]:
    """--demo: the demo call (the one still on from an earlier run, else a new one starting now)
    goes into ``bookings`` (and the store); returns the demo staff account and the demo family's
    sign-in (each: name, fresh password)."""
    from monitor.admin import current_demo_call, demo_family, demo_staff, import_booking, stored_booking

    reuse = current_demo_call(store, time.time())
    booking = stored_booking(store, reuse, config) if reuse else demo_booking(config, datetime.now(UTC))
    bookings.append(booking)
    staff = demo_staff(store, booking.prison)
    import_booking(store, booking)  # its prisoner and visitor are the demo family's
    return staff, demo_family(store, booking, staff[0])


async def _drain(server: Server, stop: asyncio.Event) -> None:
    """Take no new call; stop once the calls running here have ended."""
    node = server.cluster
    await node.drain()
    print(
        f"draining: no new calls; stopping when the {len(node.running())} running here have ended "
        "(SIGTERM again stops at once)",
        file=sys.stderr,
        flush=True,
    )
    await node.idle.wait()
    print("drained: no call running here; stopping", file=sys.stderr, flush=True)
    stop.set()


async def _run(
    server: Server, staff: tuple[str, str] | None = None, family: tuple[str, str] | None = None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    draining: list[asyncio.Task[None]] = []

    def terminate() -> None:
        """SIGTERM: a node of several drains first (its calls end on it); a second one, or a
        single server, stops at once."""
        if server.cluster is None or draining:
            stop.set()
        else:
            draining.append(asyncio.ensure_future(_drain(server, stop)))

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        await server.start()
        if server.interrupted:
            print(
                f"marked interrupted (the server stopped while they ran): {', '.join(server.interrupted)}",
                file=sys.stderr,
                flush=True,
            )
        for line in server.links():
            print(json.dumps(line), flush=True)
        console = f"{server.base_url}/console"
        if staff is None:
            print(json.dumps({"console": console}), flush=True)
        else:
            print(json.dumps({"console": console, "username": staff[0], "password": staff[1]}), flush=True)
        family_url = f"{server.base_url}/family"
        if family is not None:
            print(json.dumps({"family": family_url, "email": family[0], "password": family[1]}), flush=True)
        if server.mail is not None:  # after the console line, which readers of the links stop at
            print(json.dumps(server.mail.transport.where()), flush=True)
            print(f"Mail to families goes to the {server.mail.describe()}", file=sys.stderr, flush=True)
        if any(call.call_id.startswith("demo-") for call in server.calls):
            print(DEMO_HINT, file=sys.stderr, flush=True)
        if staff is not None:
            print(
                f"Staff console: {console}   user name: {staff[0]}   password: {staff[1]}",
                file=sys.stderr,
                flush=True,
            )
        if family is not None:
            print(
                f"Family pages (open on a phone or in a narrow window): {family_url}   e-mail: {family[0]}"
                f"   password: {family[1]}   (a verified family with the demo prisoner as a contact: "
                "book a call in the next 7 days)",
                file=sys.stderr,
                flush=True,
            )
        await stop.wait()
    finally:
        await server.stop()

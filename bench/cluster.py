"""Several nodes: placement under a burst, the join latency a routing node adds, alert fan-out.

``python -m bench.cluster [--starts 100] [--nodes 3] [--joins 30] [--alerts 30] [--db URL]
[--redis URL] [--json bench/results/cluster.json]``

Everything is real and on loopback: a ``redis-server`` started for the run (or ``--redis``), a
store (a SQLite file, or ``--db postgresql://...`` shared as in service) and ``--nodes`` servers
of ``monitor serve`` (``monitor.server.serve.Server`` with a ``ClusterNode``, in this process).

- **Placement burst**: ``--starts`` calls start at the same moment, spread over the nodes (each
  node places from its own Redis connection, as nodes do). Timed per placement (from the request
  to the claim) and for the whole burst; every call's claim is then read back: a call claimed
  twice, or claimed by a node other than the one its placement named, is a double placement (the
  target is none). The nodes report themselves idle with ``--node-cores`` cores (8, a typical
  node), so the ramp-up allowance (0.1 core per call placed in the last 20 s) decides how many fit.
- **Join latency**: a device opens a node's ``/ws/call`` and sends ``join``; timed until its
  ``joined`` frame. Three ways, interleaved: straight to the call's node, through a node that
  proxies (``--routing proxy``), and through one that redirects (``--routing redirect``: the
  device reconnects to the call's node and joins again). The call is placed already (a rejoin);
  the first join of each call, which places it, is timed apart.
- **Alert fan-out**: a console signed in on the call's node and one on another node; an alert
  published on the call's hub is written by the call's node and pushed to both. Timed from the
  publish to each console's receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from bench import machine  # noqa: E402
from bench.console import PASSWORD, login, open_console, percentile  # noqa: E402
from monitor.admin import import_booking  # noqa: E402
from monitor.bookings import load_booking  # noqa: E402
from monitor.call.admission import Limits  # noqa: E402
from monitor.call.seats import JOIN_EARLY_S  # noqa: E402
from monitor.cluster.node import ClusterNode, Settings  # noqa: E402
from monitor.cluster.placement import NodeLoad, NoNode  # noqa: E402
from monitor.cluster.registry import Registry  # noqa: E402
from monitor.server.serve import Server  # noqa: E402
from monitor.store import auth  # noqa: E402
from monitor.store.database import Store  # noqa: E402
from policies.config import load_policy  # noqa: E402

BOOKING = ROOT / "fixtures" / "bookings" / "clean" / "booking.json"
#: The join and fan-out parts time routing, not admission: the calls they start (media-less) must
#: never be refused for the load of the machine the benchmark shares.
UNLIMITED = Limits(max_loop_lag_ms=1e9, max_cpu=1e9, max_analysis_wait_ms=1e9)


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values) * 1000, 2),
        "p95": round(percentile(values, 0.95) * 1000, 2),
        "max": round(max(values) * 1000, 2),
        "n": len(values),
    }


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server for the run: a temporary folder, a free loopback port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench cluster: redis-server is not installed (make system installs it)")
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            folder,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


# ---- placement burst ---------------------------------------------------------------------------


async def placement_burst(redis_url: str, nodes: int, starts: int, cores: int) -> dict[str, Any]:
    clients = [Redis.from_url(redis_url) for _ in range(nodes)]
    try:
        registries = [Registry(client, prefix="bench-burst:") for client in clients]
        names = [f"node-{i}" for i in range(nodes)]
        for registry, name in zip(registries, names, strict=True):
            report = NodeLoad(name, f"http://{name}:8080", time.time(), cores, 0, 0.05, 2.0, 10.0)
            await registry.heartbeat(report)
        times: list[float] = []

        async def start(i: int) -> Any:
            began = time.perf_counter()
            try:
                return await registries[i % nodes].place(f"burst-{i}")
            finally:
                times.append(time.perf_counter() - began)

        began = time.perf_counter()
        results = await asyncio.gather(*(start(i) for i in range(starts)), return_exceptions=True)
        burst_s = time.perf_counter() - began
        placed = {f"burst-{i}": r for i, r in enumerate(results) if not isinstance(r, BaseException)}
        refused = sum(isinstance(r, NoNode) for r in results)
        failed = [repr(r) for r in results if isinstance(r, BaseException) and not isinstance(r, NoNode)]
        doubles = 0
        for call_id, placement in placed.items():
            if await registries[0].owner(call_id) != placement.node or not placement.placed:
                doubles += 1
        stats = await registries[0].stats()
        return {
            "starts": starts,
            "nodes": nodes,
            "node_cores": cores,
            "placed": len(placed),
            "refused_no_node_fits": refused,
            "errors": failed[:5],
            "double_placements": doubles + (stats.placed - len(placed)),
            "spread": dict(sorted(Counter(p.node for p in placed.values()).items())),
            "races_lost_and_retried": stats.retried,
            "tries_max": max((p.tries for p in placed.values()), default=0),
            "place_ms": ms(times),
            "burst_s": round(burst_s, 3),
        }
    finally:
        for client in clients:
            await client.aclose()


# ---- nodes -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def cluster(
    db: str, redis_url: str, names: list[str], routings: dict[str, str]
) -> AsyncIterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    try:
        for name in names:
            settings = Settings(
                redis_url, name, routing=routings.get(name, "proxy"), heartbeat_s=0.5, node_ttl_s=15
            )
            node = ClusterNode(settings, UNLIMITED)
            server = Server([], load_policy(), port=0, analysis_workers=0, store=Store(db), cluster=node)
            servers[name] = server
            await server.start()
        yield servers
    finally:
        for server in reversed(servers.values()):
            await server.stop()
            server.store.close()


def book(store: Store, call_id: str) -> dict[str, str]:
    base = load_booking(BOOKING, load_policy())
    start = datetime.now(UTC) - timedelta(seconds=5)
    import dataclasses

    booking = dataclasses.replace(
        base, call_id=call_id, starts_at=start, ends_at=start + timedelta(minutes=30)
    )
    import_booking(store, booking)
    opens, closes = start.timestamp() - JOIN_EARLY_S, booking.ends_at.timestamp()
    return {
        "prisoner": store.issue_join_token(call_id, booking.prisoner.id, "prisoner", opens, closes),
        "visitor": store.issue_join_token(call_id, booking.participants[0].id, "visitor", opens, closes),
    }


async def timed_join(port: int, token: str) -> float:
    """Open /ws/call on ``port``, join; seconds until ``joined`` (a redirect is followed)."""
    began = time.perf_counter()
    url = f"ws://127.0.0.1:{port}/ws/call"
    while True:
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "join", "token": token}))
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] in ("joined", "redirect", "error"):
                    break
            if frame["type"] == "joined":
                return time.perf_counter() - began
            if frame["type"] == "error":
                raise RuntimeError(f"join refused: {frame}")
            url = frame["url"]


async def join_latency(servers: dict[str, Server], joins: int) -> dict[str, Any]:
    """Calls on ``home``; devices join straight, through ``proxy`` and through ``redirect``."""
    home, proxy, redirect = servers["home"], servers["proxy"], servers["redirect"]
    await proxy.cluster.drain()
    await redirect.cluster.drain()
    first: list[float] = []
    ways: dict[str, list[float]] = {"direct": [], "proxy": [], "redirect": []}
    ports = {"direct": home.port, "proxy": proxy.port, "redirect": redirect.port}
    for i in range(joins):
        tokens = book(home.store, f"join-{i}")
        first.append(await timed_join(proxy.port, tokens["prisoner"]))  # places the call on home
        for way in ("direct", "proxy", "redirect")[i % 3 :] + ("direct", "proxy", "redirect")[: i % 3]:
            ways[way].append(await timed_join(ports[way], tokens["visitor"]))
    direct = statistics.median(ways["direct"])
    return {
        "first_join_through_proxy_places_the_call_ms": ms(first),
        **{f"{way}_ms": ms(values) for way, values in ways.items()},
        "added_by_proxy_ms_p50": round((statistics.median(ways["proxy"]) - direct) * 1000, 2),
        "added_by_redirect_ms_p50": round((statistics.median(ways["redirect"]) - direct) * 1000, 2),
    }


async def console_feed(port: int, username: str, password: str = PASSWORD) -> tuple[str, Any]:
    """``username`` signed in on the console of the server on ``port``: the session cookie and its
    ``/console/ws`` feed, the ``hello`` sent (the ``welcome`` is the caller's to read)."""
    cookie = await asyncio.to_thread(login, port, username, password)
    return cookie, await open_console(port, cookie, None)


async def console(server: Server, username: str) -> Any:
    _, ws = await console_feed(server.port, username)
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def alert_fanout(servers: dict[str, Server], alerts: int) -> dict[str, Any]:
    home, other = servers["home"], servers["proxy"]
    tokens = book(home.store, "fanout")
    await timed_join(home.port, tokens["visitor"])  # the call runs on home
    for name in ("near", "far"):
        auth.add_staff(home.store, name, "HMP Example", PASSWORD)
    near, far = await console(home, "near"), await console(other, "far")
    got: dict[str, list[float]] = {"same_node": [], "other_node": []}

    async def until(ws: Any, n: int, sent: float, key: str) -> None:
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message["type"] == "records" and any(
                r["kind"] == "alert" and r["data"].get("n") == n for r in message["records"]
            ):
                got[key].append(time.perf_counter() - sent)
                return

    for n in range(alerts):
        sent = time.perf_counter()
        home.hub.publish(
            "fanout", {"kind": "alert", "reason": "bench", "t": float(n), "n": n, "needs_staff": False}
        )
        await asyncio.gather(until(near, n, sent, "same_node"), until(far, n, sent, "other_node"))
        await asyncio.sleep(0.1)
    await near.close()
    await far.close()
    return {f"{key}_ms": ms(values) for key, values in got.items()}


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        redis_url = args.redis or stack.enter_context(redis_server())
        db = args.db or str(folder / "monitor.db")
        burst = await placement_burst(redis_url, args.nodes, args.starts, args.node_cores)
        routings = {"home": "proxy", "proxy": "proxy", "redirect": "redirect"}
        async with cluster(db, redis_url, ["home", "proxy", "redirect"], routings) as servers:
            joins = await join_latency(servers, args.joins)
            fanout = await alert_fanout(servers, args.alerts)
    return {
        "machine": machine(),
        "store": "postgresql" if str(args.db or "").startswith("postgres") else "sqlite",
        "placement_burst": burst,
        "join_latency": joins,
        "alert_fanout": fanout,
        "table": [
            [
                "burst: calls placed / refused",
                f"{burst['placed']} / {burst['refused_no_node_fits']}",
                f"of {burst['starts']} over {burst['nodes']} nodes",
            ],
            ["burst: double placements", burst["double_placements"], "(target 0)"],
            ["burst: claims retried (room used up meanwhile)", burst["races_lost_and_retried"], ""],
            ["burst: spread", json.dumps(burst["spread"]), "calls per node"],
            ["burst: time to place p50", burst["place_ms"]["p50"], "ms"],
            ["burst: time to place p95", burst["place_ms"]["p95"], "ms"],
            ["burst: whole burst", burst["burst_s"], "s"],
            ["join straight to the call's node p50", joins["direct_ms"]["p50"], "ms"],
            ["join through a proxying node p50", joins["proxy_ms"]["p50"], "ms"],
            ["join through a redirecting node p50", joins["redirect_ms"]["p50"], "ms"],
            [
                "added by proxy / redirect p50",
                f"{joins['added_by_proxy_ms_p50']} / {joins['added_by_redirect_ms_p50']}",
                "ms",
            ],
            ["alert to a console on the call's node p50", fanout["same_node_ms"]["p50"], "ms"],
            ["alert to a console on another node p50", fanout["other_node_ms"]["p50"], "ms"],
            ["alert to a console on another node p95", fanout["other_node_ms"]["p95"], "ms"],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--starts", type=int, default=100, help="calls starting at once (100)")
    parser.add_argument("--nodes", type=int, default=3, help="nodes placing the burst (3)")
    parser.add_argument("--node-cores", type=int, default=8, help="cores each node reports in the burst (8)")
    parser.add_argument("--joins", type=int, default=30, help="calls joined each way (30)")
    parser.add_argument("--alerts", type=int, default=30, help="alerts fanned out (30)")
    parser.add_argument(
        "--db", help="the store (default: a SQLite file for the run); postgresql://... as in service"
    )
    parser.add_argument("--redis", help="a Redis to use (default: a redis-server started for the run)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "cluster.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(run(args, Path(folder)))
    for what, value, unit in report["table"]:
        print(f"  {what:<44} {value!s:>14}  {unit}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

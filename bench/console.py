"""Staff console and store figures: alert delivery, reconnect backlog, audit writes, login cost.

``python -m bench.console [--trials 30] [--consoles 10] [--json bench/results/console.json]``

- **Alert delivery**: real calls (policy session, hub, the console's audit recorder) on a real
  server port; ``--consoles`` logged-in consoles hold /console/ws open. Each trial starts a call of
  its own, feeds it a capture attempt (which pauses it with an alert) and times until *every*
  console has received that call's alert record; staff then end it. A call of its own, because a
  second attempt on a call still paused for the first is a repeat of the same episode, counted on
  its one alert (``AlertRepeated``), not a new alert. The target is 1 s.
- **Reconnect backlog**: a console that missed 1,000 records reconnects; time until all arrive.
- **Audit append**: records per second through ``AuditLog.append`` (one durable transaction each,
  ``synchronous=FULL``, WAL) and the cost of ``audit verify`` per 1,000 records.
- **Login**: one scrypt password check (N=2^14, r=8, p=1).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import http.client
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

from bench import machine  # noqa: E402
from monitor import console  # noqa: E402
from monitor.admin import import_booking  # noqa: E402
from monitor.bookings import load_booking  # noqa: E402
from monitor.call.call import Call  # noqa: E402
from monitor.call.calls import Calls  # noqa: E402
from monitor.http import Router  # noqa: E402
from monitor.hub import Hub  # noqa: E402
from monitor.store import auth  # noqa: E402
from monitor.store.audit import AuditLog  # noqa: E402
from monitor.store.database import Store  # noqa: E402
from policies.config import load_policy  # noqa: E402
from policies.events import CaptureAttempt  # noqa: E402

PASSWORD = "correct horse battery"
CALL_0 = "bench-call-0"  # the first trial's call, which the reconnect backlog's records name


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def login(port: int, username: str = "officer", password: str = PASSWORD) -> str:
    """Sign ``username`` in on the console of the server on ``port``: the session token."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    conn.request("POST", "/console/login", headers={"Authorization": f"Basic {basic}"})
    answer = conn.getresponse()
    answer.read()
    return str(answer.getheader("Set-Cookie")).split(";")[0].split("=", 1)[1]


async def open_console(port: int, cookie: str, after: int | None) -> Any:
    """The ``/console/ws`` feed of that session, its ``hello`` sent (the ``welcome`` is the caller's
    to read)."""
    ws = await connect(
        f"ws://127.0.0.1:{port}/console/ws",
        origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        additional_headers={"Cookie": f"monitor_session={cookie}"},
    )
    await ws.send(json.dumps({"type": "hello", "after": after}))
    return ws


async def wait_for(ws: Any, predicate: Any) -> dict[str, Any]:
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "records":
            for record in message["records"]:
                if predicate(record):
                    return record


def alert_of(call_id: str) -> Any:
    return lambda record: record["kind"] == "alert" and record["call_id"] == call_id


async def run(trials: int, consoles: int, folder: Path) -> dict[str, Any]:
    store = Store(folder / "monitor.db")
    auth.add_staff(store, "officer", "HMP Example", PASSWORD)
    config = load_policy()
    base = load_booking(ROOT / "fixtures" / "bookings" / "clean" / "booking.json", config)
    start = datetime.now(UTC) - timedelta(seconds=1)
    bookings = [
        dataclasses.replace(
            base, call_id=f"bench-call-{n}", starts_at=start, ends_at=start + timedelta(hours=1)
        )
        for n in range(trials)
    ]
    for booking in bookings:
        import_booking(store, booking)
    hub, calls, router = Hub(), Calls[Call](), Router()
    recorder = console.register(router, store=store, hub=hub, calls=calls, record=True)
    server = await serve(router.handle_websocket, "127.0.0.1", 0, process_request=router.process_request)
    port = next(iter(server.sockets)).getsockname()[1]
    cookies = [await asyncio.to_thread(login, port) for _ in range(consoles)]
    sockets = [await open_console(port, c, None) for c in cookies]

    delivery: list[float] = []
    for booking in bookings:
        call = Call(booking, config, wall_clock=time.time, hub=hub)
        calls.add(call)
        call.start()
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        await call.handle(CaptureAttempt(call.now(), "v1", "bench"))
        waits = [wait_for(ws, alert_of(booking.call_id)) for ws in sockets]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), 10)
        except TimeoutError:
            raise SystemExit(
                f"bench.console: no alert of {booking.call_id} on every console within 10 s"
            ) from None
        delivery.append(time.perf_counter() - started)
        await call.staff_end("trial over", "officer")
        await call.close()

    log = AuditLog(store)
    head = log.head_id()
    started = time.perf_counter()
    for i in range(1000):
        log.append("warning", {"reason": "poor_lighting", "n": i}, prison="HMP Example", call_id=CALL_0)
    append_s = time.perf_counter() - started
    started = time.perf_counter()
    ws = await open_console(port, cookies[0], head)
    got = 0
    while got < 1000:
        message = json.loads(await ws.recv())
        if message["type"] == "records":
            got += len([r for r in message["records"] if r["kind"] == "warning"])
    backlog_s = time.perf_counter() - started
    await ws.close()
    started = time.perf_counter()
    verified = log.verify()
    verify_s = time.perf_counter() - started
    started = time.perf_counter()
    auth.check_password(PASSWORD, auth.hash_password(PASSWORD))
    scrypt_s = (time.perf_counter() - started) / 2

    for sock in sockets:
        await sock.close()
    server.close()
    await server.wait_closed()
    if recorder is not None:
        recorder.stop()
    store.close()
    return {
        "machine": machine(),
        "alert_delivery_ms": {
            "consoles": consoles,
            "trials": trials,
            "p50": round(statistics.median(delivery) * 1000, 1),
            "p95": round(percentile(delivery, 0.95) * 1000, 1),
            "max": round(max(delivery) * 1000, 1),
            "target": 1000,
        },
        "reconnect_backlog_1000_records_ms": round(backlog_s * 1000, 1),
        "audit_append_per_s": round(1000 / append_s),
        "audit_verify_ms_per_1000": round(verify_s * 1000 / max(1, verified.records) * 1000, 1),
        "audit_records": verified.records,
        "scrypt_check_ms": round(scrypt_s * 1000, 1),
        "table": [
            ["alert delivery p50", round(statistics.median(delivery) * 1000, 1), f"ms ({consoles} consoles)"],
            ["alert delivery p95", round(percentile(delivery, 0.95) * 1000, 1), "ms (target 1000)"],
            ["alert delivery max", round(max(delivery) * 1000, 1), "ms"],
            ["reconnect: 1000 missed records", round(backlog_s * 1000, 1), "ms"],
            ["audit append (durable)", round(1000 / append_s), "records/s"],
            [
                "audit verify",
                round(verify_s * 1000 / max(1, verified.records) * 1000, 1),
                "ms per 1000 records",
            ],
            ["scrypt password check", round(scrypt_s * 1000, 1), "ms"],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--consoles", type=int, default=10)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "console.json")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.consoles < 1:
        parser.error("--trials and --consoles must be at least 1")
    with tempfile.TemporaryDirectory() as folder:
        report = asyncio.run(run(args.trials, args.consoles, Path(folder)))
    for what, value, unit in report["table"]:
        print(f"  {what:<32} {value:>10}  {unit}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

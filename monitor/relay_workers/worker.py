"""A relay worker process: runs the ``monitor.call.call.Call`` objects of the calls placed on it.

Theory of operation. ``monitor serve --relay-workers N`` starts N of these (``python -m
monitor.relay_workers.worker``); the front process keeps the public port and talks to each over its
stdin/stdout (``monitor/relay_workers/ipc.py``). A worker holds, for its calls, everything that touches
media: the peer connections (so UDP and ICE go straight between the devices and this process),
forwarding, gates, the policy session and ticker, recordings, and its own analysis pool. The
front only relays signalling: a device's join, offer and client events arrive here tagged with
the front's connection id; the frames a call sends to a device go back tagged the same way.

Everything the calls publish on this process's hub is sent to the front (``hub``), which
re-publishes it on its own hub, so the console feed, the audit recorder and the metrics work as
in one process; an alert carries the JPEG of the frame behind it (the audit's evidence), taken
here because the frame is here. Once a second the worker sends a snapshot of its calls (state,
seconds left, devices and their media, forwarded and analysed counts, its loop lag p99 over
``LAG_WINDOW_S``) for the
board and /metrics. At end of file on stdin (the front is gone, even killed) the worker closes
its calls and exits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from monitor.call.call import Call
from monitor.call.calls import Calls
from monitor.call.peer import Device
from monitor.call.seats import JoinRefused
from monitor.hub import Hub
from monitor.load import LoopLag
from monitor.relay_workers import ipc
from monitor.workers.analysis_pool import AnalysisPool

log = logging.getLogger(__name__)

SNAPSHOT_S = 1.0
#: The loop lag a snapshot reports is the p99 over this many seconds.
LAG_WINDOW_S = 10.0


class RelayWorker:
    def __init__(self, channel: ipc.Channel, hello: ipc.Message) -> None:
        self.channel = channel
        self.config = ipc.unblob(hello["config"])
        self.record_dir = Path(hello["record_dir"]) if hello["record_dir"] else None
        self.ice_servers: list[dict[str, Any]] = list(hello["ice_servers"])
        self.analysis_workers = int(hello["analysis_workers"])
        self.hub = Hub()
        self.calls: Calls[Call] = Calls()
        self.pool: AnalysisPool | None = None
        self.conns: dict[int, tuple[Call, Device]] = {}
        self.watches: dict[int, tuple[Any, list[Any]]] = {}
        self.lag = LoopLag(window_s=LAG_WINDOW_S)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        if self.analysis_workers > 0:
            self.pool = AnalysisPool(self.analysis_workers, self.calls.on_result, self.calls.on_failure)
            await self.pool.start()
        self.lag.start()
        background = [asyncio.ensure_future(self._bridge()), asyncio.ensure_future(self._snapshots())]
        await self.channel.send(ipc.encode("ready", pid=os.getpid()))
        try:
            while True:
                message = await self.channel.recv()
                if message is None or message.kind == "stop":
                    break
                self._spawn(self._handle(message))
        finally:
            for task in (*background, *self._tasks):
                task.cancel()
            self.lag.stop()
            await self.close()

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for pc, tracks in self.watches.values():
            for track in tracks:
                track.stop()
            with contextlib.suppress(Exception):
                await pc.close()
        self.watches = {}
        await self.calls.close()
        if self.pool is not None:
            await self.pool.stop()

    async def _send(self, line: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the front is gone: we stop soon
            await self.channel.send(line)

    # ---- requests from the front ------------------------------------------------------------------
    async def _handle(self, message: ipc.Message) -> None:
        request_id = message.fields.get("id")
        try:
            result = await self._do(message)
        except JoinRefused as exc:
            if request_id is not None:
                await self._send(ipc.reply(request_id, code=exc.code, message=exc.message))
            return
        except ValueError as exc:  # an offer or answer that cannot be used: for the user
            if request_id is not None:
                await self._send(ipc.reply(request_id, code="bad_sdp", message=str(exc)[:300]))
            return
        except Exception as exc:
            log.exception("relay worker: %s failed", message.kind)
            if request_id is not None:
                await self._send(ipc.reply(request_id, code="internal", message=type(exc).__name__))
            return
        if request_id is not None:
            await self._send(ipc.reply(request_id, result))

    async def _do(self, m: ipc.Message) -> dict[str, Any]:
        kind = m.kind
        if kind == "add_call":
            booking = ipc.unblob(m["booking"])
            if self.record_dir is not None:
                keep_earlier_parts(self.record_dir / booking.call_id)
            call = Call(
                booking,
                self.config,
                wall_clock=time.time,
                pool=self.pool,
                hub=self.hub,
                record_dir=self.record_dir,
                ice_servers=self.ice_servers,
            )
            self.calls.add(call, own_tokens=False)
            call.start()
            return {}
        if kind == "close_call":
            closing = self.calls.get(m["call"])
            if closing is not None:
                await closing.close()
                self.calls.remove(m["call"])
            return {}
        if kind == "join":
            return await self._join(m)
        if kind == "offer":
            call, device = self._conn(m["conn"])
            return {"sdp": await call.answer(device, m["sdp"])}
        if kind == "capture_attempt":
            call, device = self._conn(m["conn"])
            await call.capture_attempt(device, m["detail"])
            return {}
        if kind == "leave":
            entry = self.conns.pop(m["conn"], None)
            if entry is not None:
                await entry[0].leave(entry[1])
            return {}
        if kind == "staff":
            call = self._call(m["call"])
            if m["action"] == "pause":
                await call.staff_pause(m["note"], m["staff"])
            elif m["action"] == "resume":
                await call.staff_resume(m["staff"])
            else:
                await call.staff_end(m["note"], m["staff"])
            return {}
        if kind == "watch":
            from monitor.console.watch import watch_peer

            pc, tracks, sdp, slots, servers = await watch_peer(self._call(m["call"]))
            self.watches[m["watch"]] = (pc, tracks)
            return {"sdp": sdp, "slots": slots, "ice_servers": servers}
        if kind == "watch_answer":
            from aiortc import RTCSessionDescription

            pc, _ = self.watches[m["watch"]]
            await pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
            return {}
        if kind == "watch_close":
            watched = self.watches.pop(m["watch"], None)
            if watched is not None:
                for track in watched[1]:
                    track.stop()
                await watched[0].close()
            return {}
        raise ValueError(f"a relay worker does not take {kind!r}")

    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise JoinRefused("call_over", "this call is not running here")
        return call

    def _conn(self, conn: int) -> tuple[Call, Device]:
        entry = self.conns.get(conn)
        if entry is None:
            raise JoinRefused("not_joined", "this connection is not in a call")
        return entry

    async def _join(self, m: ipc.Message) -> dict[str, Any]:
        call = self._call(m["call"])
        seat = call.seat_of(m["participant"])
        if seat is None:
            raise JoinRefused("bad_token", "this join link is not valid")
        seat = call.check_seat(seat)
        conn = int(m["conn"])

        async def send(frame: dict[str, Any]) -> None:
            await self._send(ipc.encode("send", conn=conn, frame=frame))

        async def close() -> None:
            self.conns.pop(conn, None)
            await self._send(ipc.encode("close", conn=conn))

        device = await call.join(seat, send, close)
        self.conns[conn] = (call, device)
        return {}

    # ---- to the front -----------------------------------------------------------------------------
    async def _bridge(self) -> None:
        """Every record published on this hub goes to the front (an alert with its evidence)."""
        while True:  # the hub drops a subscriber 1000 records behind: subscribe again
            subscription = self.hub.subscribe()
            async for item in subscription:
                record = dict(item)
                call_id = str(record.pop("call_id", ""))
                evidence = None
                if record.get("kind") == "alert":
                    call = self.calls.get(call_id)
                    jpeg = None
                    with contextlib.suppress(Exception):
                        jpeg = call.evidence_jpeg(str(record.get("source") or "")) if call else None
                    evidence = base64.b64encode(jpeg).decode("ascii") if jpeg else None
                await self._send(ipc.encode("hub", call=call_id, record=record, evidence=evidence))

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_S)
            for call in list(self.calls):
                if call.ended.is_set():
                    self.calls.remove(call.call_id)
                    await self._send(ipc.encode("ended", call=call.call_id))
            await self._send(ipc.encode("snapshot", **self.snapshot()))

    def snapshot(self) -> dict[str, Any]:
        stats = self.pool.stats() if self.pool is not None else {}
        calls: dict[str, Any] = {}
        for call in self.calls:
            devices = {}
            for participant, device in dict(call.devices).items():
                pc = device.pc
                tracks = [
                    [
                        str(getattr(t, "kind", "")),
                        int(getattr(t, "forwarded", 0)),
                        int(getattr(t, "filled", 0)),
                    ]
                    for t in list(device.tracks)
                ]
                media = pc is not None and pc.connectionState == "connected"
                devices[participant] = {"media": media, "tracks": tracks}
            taps = {}
            for participant, tap in dict(call.taps).items():
                key = call.source_key(participant)
                dropped = getattr(tap, "dropped", None)
                flying = self.pool.in_flight_t(key) if self.pool is not None else None
                taps[participant] = {
                    "seen": int(getattr(tap, "seen", 0)),
                    "dropped": dropped if isinstance(dropped, int) else None,
                    "analysed": int(stats.get(key, {}).get("analysed", 0)),
                    "in_flight_t": flying,
                }
            calls[call.call_id] = {
                "state": call.state.value,
                "seconds_left": call.seconds_left,
                "devices": devices,
                "taps": taps,
            }
        lag = self.lag.quantile(0.99) * 1000.0
        restarts = self.pool.restarts if self.pool is not None else 0
        return {"calls": calls, "lag_ms": round(lag, 3), "analysis_restarts": restarts}


def keep_earlier_parts(folder: Path) -> int:
    """Rename the recording parts an earlier process left in a call's folder (a worker that died,
    a server that was killed) so the call's new recorders, which number their parts from 1 again,
    do not overwrite them: ``v1.video.1.webm`` becomes ``v1-before-restart-1.video.1.webm`` (the
    ``camera`` and ``audio`` parts and the sidecars likewise); the console lists them as a source of
    their own. Returns files renamed."""
    media = re.compile(r"^(?P<source>.+?)\.(?P<rest>(?:video|camera|audio)\.[0-9]+\.(?:webm|json))$")
    try:
        names = [p.name for p in folder.iterdir() if p.is_file()]
    except OSError:
        return 0
    found = [
        (name, match) for name in names if (match := media.match(name)) and "-before-restart-" not in name
    ]
    if not found:
        return 0
    restart = 1
    while any(f"-before-restart-{restart}." in name for name in names):
        restart += 1
    renamed = 0
    for name, match in found:
        target = f"{match['source']}-before-restart-{restart}.{match['rest']}"
        with contextlib.suppress(OSError):
            (folder / name).rename(folder / target)
            renamed += 1
    return renamed


async def _pipes() -> ipc.Channel:
    """stdin/stdout as the channel; what else writes to stdout goes to stderr instead."""
    loop = asyncio.get_running_loop()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=ipc.MAX_LINE + 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return ipc.Channel(reader, writer)


async def main() -> None:
    channel = await _pipes()
    hello = await channel.recv()
    if hello is None or hello.kind != "hello":
        return
    from monitor.media import patches

    patches.set_ice_host_addresses([str(h) for h in hello["ice_hosts"]])  # the front's choice, per process
    await RelayWorker(channel, hello).run()


if __name__ == "__main__":  # pragma: no cover - started by monitor.relay_workers.pool
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s relay-worker %(process)d %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main())

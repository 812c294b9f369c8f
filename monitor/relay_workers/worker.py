"""A relay worker process: runs the ``monitor.call.call.Call`` objects of the calls placed on it.

Theory of operation. ``monitor serve --relay-workers N`` starts N of these (``python -m
monitor.relay_workers.worker``); the front process keeps the public port and talks to each over its
stdin/stdout (``monitor/relay_workers/ipc.py``). A worker holds, for its calls, everything that touches
media: the peer connections (so UDP and ICE go straight between the devices and this process),
forwarding, gates, the policy session and ticker, recordings, and its own analysis pool. The
front only relays signalling: a device's join, offer and client events arrive here tagged with
the front's connection id; the frames a call sends to a device go back tagged the same way.

Everything the calls publish on this process's hub is sent to the front (``hub``: a sink of the
hub, called with every record as it is published, writing to the pipe through a bounded queue that
makes the publisher wait when the front falls behind, so no record is lost: ``pipe.py``), which
re-publishes it on its own hub, so the console feed, the audit recorder and the metrics work as
in one process; an alert carries the JPEG of the frame behind it (the audit's evidence), taken
here because the frame is here. Once a second the worker sends a snapshot of its calls (each
call's ``stats()``: state, devices and their media, forwarded counts, taps; the analysis of each
tapped camera) and its loop lag p99 over ``LAG_WINDOW_S``: what the front knows of the calls' state
and media (the console, /metrics) and of the worker's load (admission). At end of file on stdin
(the front is gone, even killed) the worker closes its calls and exits.
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
from monitor.call.held import CarriedOver
from monitor.call.peer import Device
from monitor.call.seats import JoinRefused
from monitor.hub import Hub
from monitor.load import LoopLag
from monitor.media.forward import slate_packets
from monitor.relay_workers import ipc
from monitor.relay_workers.pipe import PipeChannel
from monitor.workers.analysis_pool import AnalysisPool, AnalysisStats, StreamStats
from policies.reasons import Reason
from policies.session import RefusedEvent

log = logging.getLogger(__name__)

SNAPSHOT_S = 1.0
#: The loop lag a snapshot reports is the p99 over this many seconds.
LAG_WINDOW_S = 10.0


class RelayWorker:
    def __init__(self, channel: PipeChannel, hello: ipc.Hello) -> None:
        self.channel = channel
        self.config = ipc.unblob(hello.config)
        self.record_dir = Path(hello.record_dir) if hello.record_dir else None
        self.ice_servers: list[dict[str, Any]] = list(hello.ice_servers)
        self.analysis_workers = hello.analysis_workers
        self.hub = Hub()
        self.calls: Calls[Call] = Calls()
        self.pool: AnalysisPool | None = None
        self.conns: dict[int, tuple[Call, Device]] = {}
        self.watches: dict[int, tuple[Any, list[Any]]] = {}
        self.lag = LoopLag(window_s=LAG_WINDOW_S)
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self) -> None:
        slates = asyncio.ensure_future(asyncio.to_thread(slate_packets))  # encoded once, off the loop
        if self.analysis_workers > 0:
            self.pool = AnalysisPool(self.analysis_workers, self.calls.on_result, self.calls.on_failure)
            await self.pool.start()
        await slates
        self.lag.start()
        self.hub.attach(self._forward)
        background = [asyncio.ensure_future(self._snapshots())]
        await self.channel.send(ipc.Ready(os.getpid()))
        try:
            while True:
                message = await self.channel.recv()
                if message is None or isinstance(message, ipc.Stop):
                    break
                self._spawn(self._handle(message))
        finally:
            for task in (*background, *self._tasks):
                task.cancel()
            self.lag.stop()
            await self.close()
            self.hub.detach(self._forward)
            self.channel.close()  # what the closing calls published still goes to the front
            await asyncio.to_thread(self.channel.join, 5.0)

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

    async def _send(self, message: ipc.Message) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the front is gone: we stop soon
            await self.channel.send(message)

    # ---- requests from the front ------------------------------------------------------------------
    async def _handle(self, message: ipc.Message) -> None:
        request_id = message.id if isinstance(message, ipc.Request) else None
        try:
            result = await self._do(message)
        except JoinRefused as exc:
            if request_id is not None:
                await self._send(ipc.reply(request_id, code=exc.code, message=exc.message))
            return
        except RefusedEvent as exc:  # a staff verdict the session will not apply: for staff
            if request_id is not None:
                await self._send(ipc.reply(request_id, code="refused", message=str(exc)[:300]))
            return
        except ValueError as exc:  # an offer or answer that cannot be used: for the user
            if request_id is not None:
                await self._send(ipc.reply(request_id, code="bad_sdp", message=str(exc)[:300]))
            return
        except Exception as exc:
            log.exception("relay worker: %s failed", message.KIND)
            if request_id is not None:
                await self._send(ipc.reply(request_id, code="internal", message=type(exc).__name__))
            return
        if request_id is not None:
            await self._send(ipc.reply(request_id, result))

    async def _do(self, m: ipc.Message) -> dict[str, Any]:
        match m:
            case ipc.AddCall(booking=booking, carried=carried):
                added = self._add_call(ipc.unblob(booking), ipc.unblob(carried))
                await added.carry_over()  # before the reply: the front acts on the call after it
            case ipc.CloseCall(call=call_id):
                closing = self.calls.get(call_id)
                if closing is not None:
                    await closing.close()
                    self.calls.remove(call_id)
            case ipc.Join():
                await self._join(m)
            case ipc.Offer(conn=conn, sdp=sdp):
                call, device = self._conn(conn)
                return {"sdp": await call.answer(device, sdp)}
            case ipc.CaptureAttempt(conn=conn, detail=detail):
                call, device = self._conn(conn)
                await call.capture_attempt(device, detail)
            case ipc.Leave(conn=conn):
                entry = self.conns.pop(conn, None)
                if entry is not None:
                    await entry[0].leave(entry[1])
            case ipc.Fault(call=call_id, reason=reason, detail=detail, raised=raised):
                faulty = self.calls.get(call_id)
                if faulty is not None:
                    await faulty.fault(Reason(reason), detail, raised)
            case ipc.Staff(call=call_id, action="pause", note=note, staff=staff):
                await self._call(call_id).staff_pause(note, staff)
            case ipc.Staff(call=call_id, action="resume", staff=staff):
                await self._call(call_id).staff_resume(staff)
            case ipc.Staff(call=call_id, action="end", note=note, staff=staff):
                await self._call(call_id).staff_end(note, staff)
            case ipc.StaffIdentity(call=call_id, source=source, track=track, participant=None, staff=staff):
                await self._call(call_id).staff_reject_identity(source, track, staff)
            case ipc.StaffIdentity(
                call=call_id, source=source, track=track, participant=str(who), staff=staff
            ):
                await self._call(call_id).staff_confirm_identity(source, track, who, staff)
            case ipc.Watch(watch=watch, call=call_id):
                from monitor.console.watch import watch_peer

                pc, tracks, sdp, slots, servers = await watch_peer(self._call(call_id))
                self.watches[watch] = (pc, tracks)
                return {"sdp": sdp, "slots": slots, "ice_servers": servers}
            case ipc.WatchAnswer(watch=watch, sdp=sdp):
                from aiortc import RTCSessionDescription

                pc, _ = self.watches[watch]
                await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
            case ipc.WatchClose(watch=watch):
                watched = self.watches.pop(watch, None)
                if watched is not None:
                    for track in watched[1]:
                        track.stop()
                    await watched[0].close()
            case _:
                raise ValueError(f"a relay worker does not take {m.KIND!r}")
        return {}

    def _add_call(self, booking: Any, carried: CarriedOver | None) -> Call:
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
            carried=carried,
        )
        self.calls.add(call, own_tokens=False)
        call.start()
        return call

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

    async def _join(self, m: ipc.Join) -> None:
        call = self._call(m.call)
        seat = call.seat_of(m.participant)
        if seat is None:
            raise JoinRefused("bad_token", "this join link is not valid")
        seat = call.check_seat(seat)
        conn = m.conn

        async def send(frame: dict[str, Any]) -> None:
            await self._send(ipc.SendToDevice(conn, frame))

        async def close() -> None:
            self.conns.pop(conn, None)
            await self._send(ipc.CloseDevice(conn))

        device = await call.join(seat, send, close)
        self.conns[conn] = (call, device)

    # ---- to the front -----------------------------------------------------------------------------
    def _forward(self, item: dict[str, Any]) -> None:
        """The hub's sink: every record published here goes to the front as it is published (an
        alert with its evidence), in order; a full pipe makes the publisher wait (``pipe.py``)."""
        record = dict(item)
        call_id = str(record.pop("call_id", ""))
        evidence = None
        if record.get("kind") == "alert":
            call = self.calls.get(call_id)
            jpeg = None
            with contextlib.suppress(Exception):
                jpeg = call.evidence_jpeg(str(record.get("source") or "")) if call else None
            evidence = base64.b64encode(jpeg).decode("ascii") if jpeg else None
        with contextlib.suppress(ConnectionError):  # the front is gone: we stop soon
            self.channel.send_now(ipc.HubRecord(call_id, record, evidence))

    async def _snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_S)
            for call in list(self.calls):
                if call.ended.is_set():
                    self.calls.remove(call.call_id)
                    await self._send(ipc.CallEnded(call.call_id))
            await self._send(self.snapshot())

    def snapshot(self) -> ipc.Snapshot:
        analysis = self.pool.stats() if self.pool is not None else None
        calls = []
        for call in self.calls:
            stats = call.stats()
            streams = {tap.key: _stream(analysis, tap.key) for tap in stats.taps}
            calls.append(ipc.CallSnapshot(stats, streams))
        lag = self.lag.quantile(0.99) * 1000.0
        restarts = analysis.restarts if analysis is not None else 0
        return ipc.Snapshot(tuple(calls), round(lag, 3), restarts)


def _stream(analysis: AnalysisStats | None, key: str) -> StreamStats:
    """A camera's analysis in this worker (none yet: zero frames, nothing in flight)."""
    found = analysis.streams.get(key) if analysis is not None else None
    return found if found is not None else StreamStats(0, 0.0, 0.0, None)


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


async def _pipes() -> PipeChannel:
    """stdin/stdout as the channel; what else writes to stdout goes to stderr instead."""
    loop = asyncio.get_running_loop()
    out = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=ipc.MAX_LINE + 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    return PipeChannel(reader, out)


async def main() -> None:
    channel = await _pipes()
    hello = await channel.recv()
    if not isinstance(hello, ipc.Hello):
        return
    from monitor.media import patches

    patches.set_ice_host_addresses(hello.ice_hosts)  # the front's choice, per process
    await RelayWorker(channel, hello).run()


if __name__ == "__main__":  # pragma: no cover - started by monitor.relay_workers.pool
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s relay-worker %(process)d %(name)s: %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        asyncio.run(main())

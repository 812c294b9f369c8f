"""The front's side of ``--relay-workers N``: starts the relay worker processes, places calls on
them, routes their messages, and restarts a worker that dies.

Theory of operation. Each worker is ``python -m monitor.relay_workers.worker``, spoken to over its
stdin/stdout (``monitor/relay_workers/ipc.py``); its stderr is the server's. A call is placed on the worker
with the fewest calls when it is loaded (so the console can watch it and it ends on time). When its
first device joins, :class:`WorkerAdmission` decides where it runs
(``monitor.call.admission.choose_worker``: the fewest running calls among the workers under the call
limit and the lag limit) and moves it there if it is elsewhere, or refuses the device with
``over_capacity``. Only a call nobody has joined yet is moved (state ``waiting``, or ``verifying``
once its start time has passed; its worker holds nothing of it but a session that has seen no
device: the new worker starts a fresh one, whose first state record the front drops, having
published that start already); a call paused by staff before anyone joined stays where its pause
is. From then on the call stays on that worker for its life (its peers, session and recordings
are there) and counts as running there until it ends, devices or not, so that its devices can
always come back. :class:`WorkerLink` reads one
worker's messages in one task and hands them on: a ``reply`` to the request waiting for it,
``send``/``close`` to the device connection they name, ``hub`` records and snapshots to the call's
:class:`~monitor.relay_workers.remote_call.RemoteCall`.

A worker that dies (end of file on its stdout) is logged once; its pending requests fail, its
calls fail closed (``RemoteCall.worker_died``) and are placed again: at once on another ready
worker, else on this one once it is restarted (after a back-off that grows while it keeps dying
young, so a broken worker cannot spin). ``stop`` asks every worker to stop, waits, then kills
what is left: no orphan survives the server, and a worker whose front is killed exits by itself
(end of file on its stdin).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.call.admission import (
    DEFAULT_MAX_CALLS,
    AdmissionStats,
    Limits,
    OverCapacity,
    WorkerLoad,
    choose_worker,
)
from monitor.relay_workers import ipc
from monitor.relay_workers.remote_call import RemoteCall, RemoteDevice, RemoteError
from monitor.workers.analysis_pool import AnalysisStats
from policies.decisions import State

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class LinkStats:
    index: int
    up: bool  # alive and ready
    calls: int  # calls placed on it, not ended
    lag_ms: float  # its latest snapshot's loop lag (p99)
    restarts: int  # times its process was restarted


@dataclass(frozen=True, slots=True)
class RelayStats:
    links: tuple[LinkStats, ...]
    #: the analysis of every worker's calls, as their snapshots said; ``restarts`` counts relay
    #: worker and analysis worker restarts together
    analysis: AnalysisStats


class WorkerLink:
    def __init__(self, pool: RelayPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.channel: ipc.Channel | None = None
        self.ready = asyncio.Event()
        self.alive = False
        self.pid = 0
        self.calls: dict[str, RemoteCall] = {}
        self.conns: dict[int, RemoteDevice] = {}
        self.lag_ms = 0.0
        self.snapshot_at: float | None = None  # time.monotonic() of its latest snapshot
        self.ready_at = 0.0
        self.analysis_restarts = 0
        self.restarts = 0
        self.started_at = 0.0
        self.backoff_s = 0.0
        self._futures: dict[int, asyncio.Future[ipc.Reply]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def spawn(self, hello: ipc.Hello) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor.relay_workers.worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=ipc.MAX_LINE + 1,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self.channel = ipc.Channel(self.process.stdout, self.process.stdin)
        self.ready = asyncio.Event()
        self.alive = True
        self.lag_ms, self.snapshot_at = 0.0, None  # what the previous process reported is gone
        self.pid = self.process.pid
        self.started_at = time.monotonic()
        await self.channel.send(hello)
        self._reader = asyncio.ensure_future(self._read())

    # ---- what a RemoteCall uses ------------------------------------------------------------------------
    def next_id(self) -> int:
        return self.pool.next_id()

    def attach(self, device: RemoteDevice) -> int:
        conn = self.pool.next_id()
        self.conns[conn] = device
        return conn

    def detach(self, conn: int) -> None:
        self.conns.pop(conn, None)

    async def request(self, message: ipc.Request) -> dict[str, Any]:
        """Send ``message`` (its id from :meth:`next_id`) and wait for the worker's reply: its
        result, or RemoteError."""
        if not self.alive or self.channel is None:
            raise RemoteError(
                "relay_unavailable", "the call server is restarting; please try again in a minute"
            )
        request_id = message.id
        future: asyncio.Future[ipc.Reply] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        try:
            await self.channel.send(message)
            answer = await asyncio.wait_for(future, REQUEST_TIMEOUT_S)
        except (ConnectionError, RuntimeError):
            raise RemoteError(
                "relay_unavailable", "the call server is restarting; please try again"
            ) from None
        except TimeoutError:
            raise RemoteError(
                "relay_timeout", "the call server did not answer in time; please try again"
            ) from None
        finally:
            self._futures.pop(request_id, None)
        if not answer.ok:
            raise RemoteError(answer.code, answer.message)
        return answer.result

    async def notify(self, message: ipc.Message) -> None:
        if not self.alive or self.channel is None:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.channel.send(message)

    # ---- from the worker ---------------------------------------------------------------------------------
    async def _read(self) -> None:
        assert self.channel is not None
        try:
            while True:
                message = await self.channel.recv()
                if message is None:
                    break
                await self._dispatch(message)
        except ipc.WireError as exc:
            log.error("relay worker %d sent a bad message (%s): stopping it", self.index, exc)
        except Exception:
            log.exception("relay worker %d: handling its message failed", self.index)
        await self.pool.died(self)

    async def _dispatch(self, message: ipc.Message) -> None:
        match message:
            case ipc.Reply(id=request_id):
                future = self._futures.get(request_id)
                if future is not None and not future.done():
                    future.set_result(message)
            case ipc.SendToDevice(conn=conn, frame=frame):
                device = self.conns.get(conn)
                if device is not None:
                    with contextlib.suppress(Exception):  # a device gone: its handler cleans up
                        await device.send(frame)
            case ipc.CloseDevice(conn=conn):
                device = self.conns.pop(conn, None)
                if device is not None:  # not awaited here: closing waits for the client's close frame
                    self._later(device.close())
            case ipc.HubRecord(call=call_id, record=record, evidence=evidence):
                jpeg = base64.b64decode(evidence) if evidence else None
                call = self.calls.get(call_id)
                if call is not None:
                    call.on_record(record, jpeg)
                else:
                    self.pool.hub.publish(call_id, record)
            case ipc.Snapshot(calls=calls, lag_ms=lag_ms, analysis_restarts=restarts):
                self.lag_ms = lag_ms
                self.snapshot_at = time.monotonic()
                self.analysis_restarts = restarts
                for snapshot in calls:
                    call = self.calls.get(snapshot.call.call_id)
                    if call is not None:
                        call.on_snapshot(snapshot)
            case ipc.CallEnded(call=call_id):
                call = self.calls.pop(call_id, None)
                self.pool.started.discard(call_id)
                if call is not None:
                    call.ended.set()
            case ipc.Ready(pid=pid):
                self.pid = pid
                self.ready_at = time.monotonic()
                self.ready.set()

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def running(self, started: Iterable[str]) -> int:
        """Calls running here: admitted (``started``) or with a device, and not ended."""
        begun = set(started)
        return sum(
            1 for c in self.calls.values() if not c.ended.is_set() and (c.call_id in begun or c.devices)
        )

    def load(self, started: Iterable[str], call: RemoteCall, now: float) -> WorkerLoad:
        """This worker as admission sees it when ``call`` asks to start (``now``: time.monotonic())."""
        heard = self.snapshot_at if self.snapshot_at is not None else self.ready_at
        return WorkerLoad(
            index=self.index,
            ready=self.alive and self.ready.is_set(),
            running=self.running(started),
            lag_ms=self.lag_ms if self.snapshot_at is not None else None,
            quiet_s=max(0.0, now - heard),
            holds_call=self.calls.get(call.call_id) is call,
        )

    def stats(self) -> LinkStats:
        placed = sum(not c.ended.is_set() for c in self.calls.values())
        return LinkStats(self.index, self.alive and self.ready.is_set(), placed, self.lag_ms, self.restarts)

    def fail_pending(self) -> None:
        self.alive = False
        for future in self._futures.values():
            if not future.done():
                future.set_exception(ConnectionError("relay worker died"))
        self._futures = {}
        self.conns = {}

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        await self.notify(ipc.Stop())
        with contextlib.suppress(Exception):
            if self.channel is not None:
                self.channel.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self.alive = False
        self.process = None


class RelayPool:
    def __init__(
        self,
        workers: int,
        *,
        hub: Any,
        config: Any,
        record_dir: Path | None,
        ice_servers: list[dict[str, Any]],
        analysis_workers: int,
        ice_hosts: list[str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("at least one relay worker")
        self.hub = hub
        self.links = [WorkerLink(self, i) for i in range(workers)]
        self.orphans: list[RemoteCall] = []
        self.started: set[str] = set()  # calls admitted (a device let in to start them), until they end
        self._ids = 0
        self._stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        if ice_hosts is None:  # what aioice offers in this process (tests patch it): the same there
            import aioice.ice

            ice_hosts = list(aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True))
        self._hello = ipc.Hello(
            config=ipc.blob(config),
            record_dir=str(record_dir) if record_dir else None,
            ice_servers=ice_servers,
            ice_hosts=ice_hosts,
            analysis_workers=analysis_workers,
        )
        ipc.encode(self._hello)  # what the workers could not read fails here, not in each worker

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def start(self, timeout: float = READY_TIMEOUT_S) -> None:
        for link in self.links:
            await link.spawn(self._hello)
        await asyncio.wait_for(asyncio.gather(*(link.ready.wait() for link in self.links)), timeout)

    @property
    def pids(self) -> list[int]:
        return [link.pid for link in self.links if link.alive]

    # ---- placing calls -----------------------------------------------------------------------------------
    def place(self, call: RemoteCall) -> None:
        """Put ``call`` on the ready worker with the fewest calls (or keep it until one is ready)."""
        ready = [link for link in self.links if link.alive and link.ready.is_set()]
        if not ready:
            if call not in self.orphans:
                self.orphans.append(call)
            return
        link = min(ready, key=lambda x: (sum(not c.ended.is_set() for c in x.calls.values()), x.index))
        link.calls[call.call_id] = call
        self._later(self._add(link, call))

    async def _add(self, link: WorkerLink, call: RemoteCall) -> None:
        try:
            carried = ipc.blob(call.carried())
            await link.request(ipc.AddCall(link.next_id(), call.call_id, ipc.blob(call.booking), carried))
        except RemoteError as exc:
            if link.alive and link.calls.get(call.call_id) is call:  # refused: it cannot be served
                log.error("call %s could not be placed on relay worker %d: %s", call.call_id, link.index, exc)
                link.calls.pop(call.call_id, None)
            return  # a worker that died meanwhile has put the call back among the orphans
        if link.calls.get(call.call_id) is not call:  # moved away meanwhile (admission): not here
            await link.notify(ipc.CloseCall(call.call_id))
            return
        await call.placed_on(link)

    def loads(self, call: RemoteCall) -> list[WorkerLoad]:
        now = time.monotonic()
        return [link.load(self.started, call, now) for link in self.links]

    def start_call(self, call: RemoteCall, index: int) -> None:
        """Admission chose worker ``index`` for ``call``, whose first device is joining: it runs
        there from now on (moved there first if it was placed elsewhere or not at all)."""
        self.started.add(call.call_id)
        target = self.links[index]
        if target.calls.get(call.call_id) is call:
            return
        for link in self.links:
            if link.calls.get(call.call_id) is call:
                del link.calls[call.call_id]
                if link.alive:  # its waiting session there is closed (nothing else of it is there)
                    self._later(link.notify(ipc.CloseCall(call.call_id)))
        if call in self.orphans:
            self.orphans.remove(call)
        log.info("call %s moved to relay worker %d, the one admission chose", call.call_id, index)
        call.link = None
        call.placed.clear()  # the join waits for the new place (RemoteCall._link)
        target.calls[call.call_id] = call
        self._later(self._add(target, call))

    async def died(self, link: WorkerLink) -> None:
        if not link.alive:
            return
        link.fail_pending()
        if self._stopping:
            return
        code = link.process.returncode if link.process is not None else None
        if link.process is not None and code is None:
            with contextlib.suppress(ProcessLookupError):
                link.process.kill()
            code = await link.process.wait()
        calls = [c for c in link.calls.values() if not c.ended.is_set()]
        young = time.monotonic() - link.started_at < 30.0
        link.backoff_s = min(30.0, max(1.0, 2 * link.backoff_s)) if young else 0.0
        log.error(
            "relay worker %d (pid %d) died (exit code %s); its %d call(s) paused; restarting it in %.0f s",
            link.index,
            link.pid,
            code,
            len(calls),
            link.backoff_s,
        )
        link.calls = {}
        link.process = None
        for call in calls:
            await call.worker_died()
            self.place(call)  # on another ready worker now, else an orphan until one is ready
        link.restarts += 1
        await asyncio.sleep(link.backoff_s)
        if self._stopping:
            return
        try:
            await link.spawn(self._hello)
            await asyncio.wait_for(link.ready.wait(), READY_TIMEOUT_S)
        except (OSError, TimeoutError):
            log.error("relay worker %d did not come back", link.index)
            return
        orphans, self.orphans = self.orphans, []
        for call in orphans:
            if not call.ended.is_set():
                self.place(call)

    def _later(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stats(self) -> RelayStats:
        streams = {
            key: stream
            for link in self.links
            for call in link.calls.values()
            for key, stream in call.streams.items()
        }
        restarts = sum(link.restarts + link.analysis_restarts for link in self.links)
        return RelayStats(tuple(link.stats() for link in self.links), AnalysisStats(streams, restarts))

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(link.stop() for link in self.links), return_exceptions=True)


class WorkerAdmission:
    """``Calls.admission`` of a server with relay workers: the same ``admit(call_id, running)``
    as ``monitor.call.admission.Admission``, deciding per worker (see the theory of operation).
    ``lookup`` finds a call by id (the server's ``Calls.get``)."""

    def __init__(self, pool: RelayPool, limits: Limits, lookup: Callable[[str], Any]) -> None:
        self.pool = pool
        self.limits = limits
        self.lookup = lookup
        self.refused = 0
        self.admitted = 0

    def admit(self, call_id: str, running: Iterable[str]) -> None:
        """Return if ``call_id`` may have a device join (placing it); raise ``OverCapacity`` if not."""
        if call_id in self.pool.started or call_id in set(running):
            return  # never break a call already under way
        call = self.lookup(call_id)
        if not isinstance(call, RemoteCall) or call.ended.is_set():
            return  # nothing to place: the join itself says what is wrong
        try:
            movable = call.state in (State.WAITING, State.VERIFYING)  # nobody has joined it yet
            index = choose_worker(self.pool.loads(call), self.limits, movable=movable)
        except OverCapacity:
            self.refused += 1
            raise
        self.pool.start_call(call, index)
        self.admitted += 1

    def stats(self) -> AdmissionStats:
        return AdmissionStats(self.admitted, self.refused, self.limits.max_calls or DEFAULT_MAX_CALLS)


__all__ = ["LinkStats", "RelayPool", "RelayStats", "WorkerAdmission", "WorkerLink"]

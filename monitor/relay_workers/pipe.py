"""The relay worker's side of its pipe to the front: every message written, in order, none lost.

Theory of operation. A worker's calls publish their records on the worker's hub, and each must
reach the front (its audit log keeps them all). A hub subscription would be dropped when it falls
behind; instead the worker attaches a sink to the hub (``Hub.attach``), which is called inside
``publish``, synchronously, with every record. So the pipe must take a message without awaiting:
:class:`PipeChannel` hands each encoded line to one writer thread through a bounded queue
(``max_bytes``), and the thread writes the lines to the pipe in the order they were handed over.
A line that finds the queue full waits for room: :meth:`PipeChannel.send_now` (the hub sink)
blocks the event loop, so the calls stop publishing until the front has read (back-pressure,
as the audit writer does, never a lost or reordered record); :meth:`PipeChannel.send` (replies,
frames for devices, snapshots) waits without blocking the loop. A pipe that breaks (the front is
gone) fails every later send with ``ConnectionError``; the worker then exits at end of file on
its stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import deque

from monitor.relay_workers import ipc

#: Bytes of lines waiting for the writer thread before senders wait (a few evidence JPEGs).
MAX_QUEUED_BYTES = 16 * 2**20
_ROOM_POLL_S = 0.005


class PipeChannel(ipc.Channel):
    """``recv`` from ``reader`` as :class:`~monitor.relay_workers.ipc.Channel` does; lines written to
    the file descriptor ``fd`` by a thread of its own (see the module doc)."""

    def __init__(self, reader: asyncio.StreamReader, fd: int, max_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.reader = reader
        self.fd = fd
        self.max_bytes = max_bytes
        self._cond = threading.Condition()
        self._lines: deque[bytes] = deque()
        self._bytes = 0  # queued, the line being written included
        self._broken: OSError | None = None
        self._closed = False
        self.written = 0  # lines written to the pipe
        self.waits = 0  # sends that found the queue full
        os.set_blocking(fd, True)
        self._thread = threading.Thread(target=self._run, name="relay-pipe", daemon=True)
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        with self._cond:
            return self._bytes

    def _room(self, size: int) -> bool:
        return not self._lines or self._bytes + size <= self.max_bytes

    def _check(self) -> None:
        if self._broken is not None or self._closed:
            raise ConnectionError(f"the pipe to the front is closed ({self._broken or 'closed'})")

    def send_now(self, message: ipc.Message) -> None:
        """Queue one message now; blocks while the queue is full (back-pressure)."""
        line = ipc.encode(message)
        with self._cond:
            self._check()
            if not self._room(len(line)):
                self.waits += 1
                while not self._room(len(line)):
                    self._cond.wait(1.0)
                    self._check()
            self._put(line)

    async def send(self, message: ipc.Message) -> None:
        """Queue one message, waiting (without blocking the loop) while the queue is full."""
        line = ipc.encode(message)
        waited = False
        while True:
            with self._cond:
                self._check()
                if self._room(len(line)):
                    self._put(line)
                    return
                if not waited:
                    waited = True
                    self.waits += 1
            await asyncio.sleep(_ROOM_POLL_S)

    def _put(self, line: bytes) -> None:
        self._lines.append(line)
        self._bytes += len(line)
        self._cond.notify_all()

    def close(self) -> None:
        """Write what is queued, then close the descriptor (from the writer thread)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def join(self, timeout: float) -> None:
        """Wait (off the loop) for the writer thread to finish after :meth:`close`."""
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._lines and not self._closed:
                    self._cond.wait()
                if not self._lines:
                    break
                line = self._lines[0]
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self.fd, view) :]
            except OSError as exc:
                with self._cond:
                    self._broken = exc
                    self._lines.clear()
                    self._bytes = 0
                    self._cond.notify_all()
                break
            with self._cond:
                self._lines.popleft()
                self._bytes -= len(line)
                self.written += 1
                self._cond.notify_all()
        with contextlib.suppress(OSError):
            os.close(self.fd)


__all__ = ["MAX_QUEUED_BYTES", "PipeChannel"]

"""The relay worker's pipe to the front (``monitor.relay_workers.pipe``), on a real OS pipe whose
reader falls behind: every hub record gets through, in order, none dropped; the queue never holds
more than its bound (the sender waits instead); a broken pipe fails the sends, clearly."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from monitor.relay_workers import ipc
from monitor.relay_workers.pipe import PipeChannel

BOUND = 64 * 1024


class SlowFront:
    """The front's end of the pipe: starts reading late, then reads slowly, keeping every line."""

    def __init__(self, fd: int, channel: PipeChannel) -> None:
        self.fd = fd
        self.channel = channel
        self.lines: list[bytes] = []
        self.most_queued = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        time.sleep(0.5)  # behind from the start: the pipe and then the queue fill up
        pending = b""
        while chunk := os.read(self.fd, 4096):
            self.most_queued = max(self.most_queued, self.channel.queued_bytes)
            pending += chunk
            *done, pending = pending.split(b"\n")
            self.lines += done
            time.sleep(0.0005)
        os.close(self.fd)


async def test_every_record_gets_through_in_order_and_the_queue_stays_bounded() -> None:
    read_end, write_end = os.pipe()
    channel = PipeChannel(asyncio.StreamReader(), write_end, max_bytes=BOUND)
    front = SlowFront(read_end, channel)
    count = 3000

    def publish() -> None:  # what the hub's sink does, in the publisher's thread
        for n in range(count):
            channel.send_now(ipc.HubRecord("c-1", {"kind": "alert_repeated", "n": n, "pad": "x" * 200}, None))

    started = time.monotonic()
    await asyncio.to_thread(publish)
    await channel.send(ipc.CallEnded("c-1"))  # the async path queues behind them, in order
    channel.close()
    await asyncio.to_thread(channel.join, 30)
    await asyncio.to_thread(front.thread.join, 30)
    messages = [ipc.decode(line + b"\n") for line in front.lines]
    assert [m.record["n"] for m in messages if isinstance(m, ipc.HubRecord)] == list(range(count))
    assert isinstance(messages[-1], ipc.CallEnded) and len(messages) == count + 1
    assert channel.waits > 0, "the reader was never behind: nothing was tested"
    line = len(ipc.encode(ipc.HubRecord("c-1", {"kind": "alert_repeated", "n": 0, "pad": "x" * 200}, None)))
    assert front.most_queued <= BOUND + line
    assert time.monotonic() - started < 60


async def test_a_broken_pipe_fails_the_sends() -> None:
    read_end, write_end = os.pipe()
    channel = PipeChannel(asyncio.StreamReader(), write_end, max_bytes=BOUND)
    os.close(read_end)  # the front is gone
    channel.send_now(ipc.CallEnded("c-1"))  # queued; the writer thread finds the pipe broken
    for _ in range(100):
        try:
            channel.send_now(ipc.CallEnded("c-1"))
        except ConnectionError as exc:
            assert "closed" in str(exc)
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("sends to a broken pipe kept succeeding")
    with pytest.raises(ConnectionError):
        await channel.send(ipc.CallEnded("c-1"))

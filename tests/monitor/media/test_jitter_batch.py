"""UDP sockets are drained per wake-up, not one datagram per event-loop iteration (monitor.media.jitter)."""

from __future__ import annotations

import asyncio
import socket

from support.waiting import until

from monitor.media.jitter import DATAGRAM_BATCH, read_datagrams_in_batches


class Collect(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got.append(data)


async def first_wake_up(sent: int) -> tuple[int, list[bytes]]:
    """Queue ``sent`` datagrams on a fresh socket; how many the first read delivers, and all of them."""
    read_datagrams_in_batches()
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Collect, local_addr=("127.0.0.1", 0))
    for _ in range(3):
        await asyncio.sleep(0)  # the reader is registered
    port = transport.get_extra_info("sockname")[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for i in range(sent):
            out.sendto(i.to_bytes(2, "big") * 100, ("127.0.0.1", port))
    await until(lambda: protocol.got, 10, "the first read", every=0)  # every loop turn
    first = len(protocol.got)
    await until(lambda: len(protocol.got) >= sent, 10, f"all {sent} datagrams", every=0.01)
    transport.close()
    return first, protocol.got


async def test_one_wake_up_reads_every_queued_datagram_in_order() -> None:
    first, got = await first_wake_up(40)
    assert first == 40  # asyncio alone delivers 1 per loop iteration
    assert [int.from_bytes(d[:2], "big") for d in got] == list(range(40))


async def test_a_flooded_socket_yields_the_loop_after_a_bounded_batch() -> None:
    first, got = await first_wake_up(DATAGRAM_BATCH + 30)
    assert first == DATAGRAM_BATCH
    assert len(got) == DATAGRAM_BATCH + 30

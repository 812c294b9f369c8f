"""A bare WebSocket client over a plain TCP socket, for peers that misbehave on purpose.

``websockets``' own client always answers a close frame; this one answers nothing unless told to,
so a test can check how long the server holds a connection whose peer never completes the closing
handshake. It speaks just enough RFC 6455: the upgrade request, masked text/binary frames out,
unmasked frames in.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if self.opcode == CLOSE and self.payload else None


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, host: str, port: int, path: str, headers: dict[str, str] | None = None
    ) -> RawWebSocket:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionError(f"no upgrade: {head.splitlines()[0]!r}")
        return cls(reader, writer)

    async def send(self, payload: str | bytes) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        opcode = TEXT if isinstance(payload, str) else BINARY
        mask = os.urandom(4)
        size = len(data)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 2**16:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    async def recv(self, timeout: float = 10.0) -> Frame:
        """The next frame from the server (EOF raises ``asyncio.IncompleteReadError``)."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return Frame(first & 0x0F, await self.reader.readexactly(size))

    async def until_dropped(self, timeout: float) -> float:
        """Read (and ignore) until the server drops the TCP connection; seconds it took. Never
        answers a close frame."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while await asyncio.wait_for(self.reader.read(65536), timeout - (loop.time() - started)):
                pass
        except ConnectionError:
            pass
        return loop.time() - started

    def abort(self) -> None:
        self.writer.transport.abort()

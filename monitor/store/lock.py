"""One ``monitor serve`` per database file, and on PostgreSQL one per node name.

SQLite: an exclusive ``flock`` on ``<database>.serve-lock``. Two servers on one file would each mark
the other's calls interrupted, issue links for the same calls and rotate the demo password under
each other. The lock is taken before the database is opened and held for the life of the process;
the kernel releases it when the process ends however it ends (SIGKILL too), so a stale file never
keeps a server out. The file holds the holder's pid, for the message.

PostgreSQL: several nodes share one database by design, each marking only its own calls
interrupted when it starts (``calls.node``), so the lock is per node: an advisory lock on the
node's name, held by a connection of its own for the server's life
(:class:`monitor.store.sql_postgres.NodeLock`). Two servers that claim one node name are refused.

Admin commands (``monitor book`` etc.) take neither: they share the database with running servers
by design (the database's own locking).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from monitor.store.sql import Location, StoreError, locate


class _Held(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None: ...


class ServeLock:
    def __init__(self, location: str | Path | Location, node: str = "") -> None:
        self.location = locate(location)
        self.db_path = self.location.path
        self.node = node
        self.path = self.db_path.with_name(self.db_path.name + ".serve-lock")
        self._fd: int | None = None
        self._node_lock: _Held | None = None

    def acquire(self) -> None:
        """Take the lock, or a StoreError naming the server that holds it."""
        if self.location.is_postgresql:
            from monitor.store.sql_postgres import NodeLock

            lock = NodeLock(self.location, self.node)
            lock.acquire()
            self._node_lock = lock
            return
        if not self.path.parent.is_dir():
            raise StoreError(f"{self.db_path}: directory {self.path.parent} does not exist")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"{self.db_path}: another `monitor serve` (pid {holder}) is using this database; "
                "stop it first, or give this one another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._node_lock is not None:
            self._node_lock.release()
            self._node_lock = None
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> ServeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

"""One ``monitor serve`` per database: an exclusive ``flock`` on ``<database>.serve-lock``.

Two servers on one database would each mark the other's calls interrupted, issue links for the
same calls and rotate the demo password under each other. The lock is taken before the database is
opened and held for the life of the process; the kernel releases it when the process ends however
it ends (SIGKILL too), so a stale file never keeps a server out. The file holds the holder's pid,
for the message. Admin commands (``monitor book`` etc.) do not take it: they share the database
with a running server by design (SQLite's own locking).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from monitor.store.database import StoreError


class ServeLock:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path
        self.path = db_path.with_name(db_path.name + ".serve-lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or a StoreError naming the server that holds it."""
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
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> ServeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

"""A small file system of a test's own: a real tmpfs mounted under its temporary folder (root
only), and a filler file that takes every free byte, so writes fail with ENOSPC exactly as on a
full disk; deleting the filler gives the space back. ``from support.small_disk import small_disk``."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        chunk = 1 << 16
        with open(self.filler, "ab", buffering=0) as f:
            while chunk:
                try:
                    f.write(bytes(chunk))
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    chunk //= 2
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink()


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "4m") -> Iterator[SmallDisk]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = folder / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)

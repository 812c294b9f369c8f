"""A CPU hog for benchmarks: busy-loop processes at normal priority, competing for the CPU with
everything on the machine while they run (``bench.pause_latency``'s ``hog`` condition)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

#: A hog process: at normal priority (niceness 0, whatever the bench's own), spins, and leaves
#: within ~30 ms once the process that started it is gone (a bench killed outright must not leave
#: busy loops behind on a shared machine), or after 15 minutes.
HOG_LOOP = """import os, sys, time
try:
    os.setpriority(os.PRIO_PROCESS, 0, 0)
except PermissionError:  # started at a higher niceness without the right to lower it: stays there
    pass
parent, end = int(sys.argv[1]), time.monotonic() + 900  # not getppid(): it may be gone already
while os.getppid() == parent and time.monotonic() < end:
    for _ in range(1_000_000):
        pass
"""


class Hog:
    """``n`` busy-loop processes at normal priority (niceness 0), competing for the CPU with
    everything on the machine while they run; :meth:`stop` says how many cores they got, and
    ``niceness`` what they ran at."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0.0
        self.niceness: int | None = None

    def start(self) -> None:
        command = [sys.executable, "-S", "-c", HOG_LOOP, str(os.getpid())]
        self.processes = [subprocess.Popen(command) for _ in range(self.n)]
        self.started = time.monotonic()

    def stop(self) -> float:
        """Stop the hog; the cores it used on average while it ran (CPU seconds over wall seconds)."""
        if not self.processes:
            return 0.0
        wall = time.monotonic() - self.started
        used = sum(cpu_seconds(process.pid) for process in self.processes)
        self.niceness = max((n for p in self.processes if (n := niceness(p.pid)) is not None), default=None)
        for process in self.processes:
            process.kill()
        for process in self.processes:
            process.wait()
        self.processes = []
        return used / wall if wall > 0 else 0.0


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None if unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 if it cannot be read)."""
    fields = _stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def niceness(pid: int) -> int | None:
    """The scheduling niceness of process ``pid`` (None if it cannot be read)."""
    fields = _stat(pid)
    return None if fields is None else int(fields[16])

"""The processes that relay calls sample frames but never analyse them in-process: importing the
server, a relay worker or a call must not load the models (MediaPipe, dlib), which only the
analysis workers and replay need."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
import monitor.call.calls, monitor.relay_workers.worker, monitor.server.serve
loaded = [m for m in ("mediapipe", "dlib", "monitor.analysis.pipeline") if m in sys.modules]
print(",".join(loaded))
"""


def test_relaying_processes_do_not_import_the_models() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""

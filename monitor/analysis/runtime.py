"""Process-wide settings for the analysis libraries, applied once per worker before models load.

The machine has few cores shared by the relay and several workers, so each worker computes on one
thread: OpenCV's pool is set to 1 and the BLAS/OpenMP variables are pinned (they must be set before
the libraries start their pools). MediaPipe's legacy graphs run TFLite with XNNPACK and no thread
pool by default, and dlib-bin is built without BLAS, so both already compute on the calling thread.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def limit_threads(threads: int = 1) -> None:
    for name in _THREAD_VARS:
        os.environ.setdefault(name, str(threads))
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ INFO/WARNING lines
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # protobuf 4.25 warns on every MediaPipe result; nothing to act on, and it would bury real errors
    warnings.filterwarnings("ignore", message="SymbolDatabase.GetPrototype", category=UserWarning)
    import cv2

    cv2.setNumThreads(threads)


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send what native code (TFLite, absl) writes to fd 2 to /dev/null; Python's stderr still works.

    MediaPipe's graphs print INFO/W0000 lines straight to file descriptor 2 when models load and
    run, which would bury the command's own messages. ``sys.stderr`` is re-pointed at a duplicate
    of the real stderr for the duration, so progress and errors stay visible. Set
    ``MONITOR_NATIVE_LOGS=1`` to keep the native lines (debugging).
    """
    if os.environ.get("MONITOR_NATIVE_LOGS") == "1":
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a replaced stderr (pytest capture): leave it
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    python_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    replacement = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
    try:
        os.dup2(devnull, fd)
        sys.stderr = replacement
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype", category=UserWarning)
            yield
    finally:
        replacement.flush()
        sys.stderr = python_stderr
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
        replacement.close()

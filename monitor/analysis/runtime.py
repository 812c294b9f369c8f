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
    """Silence C++ log lines (TFLite/absl INFO and W0000 lines) written to fd 2 while models start.

    MediaPipe's graphs print them when they are built and first run, whatever GLOG/TF variables
    say; they would bury the one-line errors the CLI promises. Python-level stderr is untouched
    outside the block, and the block is only used around model construction and a warm-up frame.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

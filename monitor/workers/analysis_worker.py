"""The analysis worker process: hosts the ``FramePipeline`` of the sources assigned to it.

Theory of operation. :func:`worker_main` is the target of each process the pool spawns. It warms up
first (:func:`warm_up`), then reports :class:`~monitor.workers.messages.Ready` and serves the pool's
messages from its inbox one at a time, in order: enrolments per call, a pipeline per opened source,
frames in, results out. Warm start: a cold worker spends seconds importing and loading the models
and running them for the first time; on a busy machine that can exceed the policy's fail-closed
window (5 s without analysis pauses the call with ``analysis_error``) for a call's first frames. So
a worker enrols a real reference photo, builds a pipeline and analyses that photo once before it
reports ready.

The models are imported here, in the child, when it starts serving: the server process that imports
the pool never loads them.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import queue
import time
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from monitor.workers.messages import (
    Analyse,
    Close,
    Crash,
    Enrol,
    EnrolFailed,
    Failed,
    Forget,
    FromWorker,
    Open,
    Ready,
    Result,
    Skipped,
    Stop,
    ToWorker,
    WarmUpFailed,
)
from policies.events import Role

#: An idle worker checks this often that the server that started it is still alive.
PARENT_CHECK_S = 2.0
#: A real face photo the workers warm up on (None or a missing file: models load, nothing runs).
WARMUP_PHOTO = Path(__file__).resolve().parents[2] / "fixtures" / "bookings" / "clean" / "v1.jpg"


def worker_main(
    inbox: Any, outbox: mpc.Connection, warmup: Path | None = None
) -> None:  # pragma: no cover - child process
    with contextlib.suppress(BrokenPipeError, EOFError, KeyboardInterrupt):  # the server went away
        _serve(inbox, outbox, warmup)


def warm_up(photo: Path | None) -> float:
    """Load the models and run them once on a real face (enrol it, analyse it); seconds spent."""
    started = time.perf_counter()
    if photo is None or not photo.is_file():
        return 0.0
    import cv2

    from monitor.analysis.enrol import enrol_booking
    from monitor.analysis.pipeline import FramePipeline
    from monitor.analysis.runtime import quiet_native_logs

    person = SimpleNamespace(id="warm-up", reference_photos=(photo,))
    booking = SimpleNamespace(
        participants=(person,), prisoner=SimpleNamespace(id="warm-up-prisoner", reference_photos=())
    )
    with quiet_native_logs():
        visitors, _ = enrol_booking(booking)
        pipeline = FramePipeline(visitors, source="warm-up", role=Role.VISITOR)
        image = cv2.imread(str(photo))
        if image is not None:
            pipeline.process(image, 0.0)
        pipeline.close()
    return time.perf_counter() - started


def _why(exc: Exception) -> tuple[str, str]:
    return f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)


class _Host:
    """The worker's state: enrolments by call, pipelines by source key."""

    def __init__(self) -> None:
        from monitor.analysis.enrol import enrol_booking
        from monitor.analysis.frame import Frame
        from monitor.analysis.pipeline import FramePipeline

        self.enrol_booking = enrol_booking
        self.frame_pipeline = FramePipeline
        self.frame = Frame
        self.enrolments: dict[str, Any] = {}  # call id -> enrol_booking(): (visitors, prisoner or None)
        self.pipelines: dict[str, Any] = {}  # source key -> FramePipeline

    def handle(self, message: ToWorker) -> FromWorker | None:  # pragma: no cover - child process
        """Serve one message; what to answer, if anything (``Stop`` is the caller's)."""
        match message:
            case Enrol(call_id, booking):
                try:
                    self.enrolments[call_id] = self.enrol_booking(booking)
                except Exception as exc:
                    return EnrolFailed(call_id, *_why(exc))
            case Open(key, call_id, source, role):
                try:
                    visitors, prisoner = self.enrolments[call_id]
                    enrolment = visitors if role is Role.VISITOR else prisoner
                    if enrolment is None:
                        raise ValueError(f"{source}: no reference photo to check this side against")
                    self.pipelines[key] = self.frame_pipeline(enrolment, source=source, role=role)
                except Exception as exc:
                    return Failed(key, "open", *_why(exc))
            case Close(key):
                self.pipelines.pop(key, None)
            case Forget(call_id):
                self.enrolments.pop(call_id, None)
            case Crash():
                os._exit(70)
            case Analyse(key, t, planes):
                if key not in self.pipelines:  # not opened (its open failed and was reported)
                    return Skipped(key)
                return self._analyse(key, t, planes)
        return None

    def _analyse(self, key: str, t: float, planes: Any) -> Result | Failed:  # pragma: no cover - child
        import cv2

        try:
            started = time.perf_counter()
            rgb = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)  # what the models read
            result = self.pipelines[key].process(self.frame.from_rgb(rgb), t)
            spent = time.perf_counter() - started
        except Exception as exc:
            return Failed(key, "frame", *_why(exc))
        return Result(key, result.observation, spent, bool(result.steady), bool(result.voting))


def _serve(inbox: Any, outbox: mpc.Connection, warmup: Path | None) -> None:  # pragma: no cover - child
    host = _Host()
    try:
        spent = warm_up(warmup)
    except Exception as exc:  # a worker that cannot warm up still serves (and fails per frame if broken)
        spent = -1.0
        outbox.send(WarmUpFailed(*_why(exc)))
    outbox.send(Ready(spent))
    while True:
        try:
            message = inbox.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            # a server killed with SIGKILL runs no shutdown code, and this process holds a write end
            # of its own inbox, so it would wait forever: leave once the server is gone
            parent = mp.parent_process()
            if parent is not None and not parent.is_alive():
                return
            continue
        if isinstance(message, Stop):
            return
        answer = host.handle(message)
        if answer is not None:
            outbox.send(answer)


__all__ = ["PARENT_CHECK_S", "WARMUP_PHOTO", "warm_up", "worker_main"]

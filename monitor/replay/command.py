"""``monitor replay`` as a command: the timeline written atomically (to a file only once all went
well), a progress bar on a terminal, and :func:`replay_file`, the entry point tests and the bench use."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from monitor.analysis.cadence import ANALYSIS_FPS, CALM_FPS, CHANGE_THRESHOLD
from monitor.analysis.runtime import quiet_native_logs
from monitor.errors import UserError
from monitor.media.video_file import Video
from monitor.record.timeline import encode_line
from monitor.replay.events import InjectedEvent, Record, load_events
from monitor.replay.replay import Replay, ReplayStats
from policies.booking import Booking
from policies.config import PolicyConfig


@contextmanager
def atomic_output(path: Path | None) -> Iterator[IO[str]]:
    """stdout, or a temp file next to ``path`` renamed over it only when everything succeeded."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UserError(f"{path}: cannot write timeline: directory {directory} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: cannot write timeline: is a directory")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise UserError(f"{path}: cannot write timeline: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total_s: float | None, stream: IO[str]) -> None:
        self.total = total_s
        self.stream = stream
        self.started = time.perf_counter()
        self.drawn = 0.0

    def __call__(self, t: float, stats: ReplayStats) -> None:
        now = time.perf_counter()
        if now - self.drawn < 0.1:
            return
        self.drawn = now
        speed = t / (now - self.started) if now > self.started else 0.0
        if self.total:
            share = min(1.0, t / self.total)
            bar = "#" * round(30 * share)
            line = f"\r[{bar:<30}] {share:4.0%} {t:6.1f}/{self.total:.1f} s  {speed:5.1f}x"
        else:
            line = f"\r{t:6.1f} s  {speed:5.1f}x"
        self.stream.write(line)
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r" + " " * 64 + "\r")
        self.stream.flush()


def replay_file(
    video_path: Path,
    booking: Booking,
    config: PolicyConfig,
    out: IO[str],
    *,
    events: Sequence[InjectedEvent] = (),
    offset: float = 0.0,
    evidence: Path | None = None,
    analysis_fps: float = ANALYSIS_FPS,
    calm_fps: float | None = CALM_FPS,
    change_threshold: float | None = CHANGE_THRESHOLD,
    progress_stream: IO[str] | None = None,
) -> ReplayStats:
    """Replay one video into ``out`` (timeline lines). The library entry point tests and bench use."""
    with Video(video_path) as video:
        replay = Replay(
            booking,
            config,
            offset=offset,
            analysis_fps=analysis_fps,
            calm_fps=calm_fps,
            change_threshold=change_threshold,
            evidence=evidence,
        )
        bar = ProgressBar(video.info.duration_s, progress_stream) if progress_stream is not None else None

        def emit(record: Record) -> None:
            out.write(encode_line(record) + "\n")

        try:
            stats = replay.run(video, events, emit, bar)
        finally:
            replay.close()
            if bar is not None:
                bar.finish()
    return stats


def run_replay(args: argparse.Namespace) -> int:
    from monitor.bookings import load_booking
    from policies.config import load_policy

    config = load_policy(args.policy)
    booking = load_booking(args.booking, config)
    events = load_events(args.events) if args.events else ()
    evidence: Path | None = None
    if args.evidence:
        evidence = Path(args.evidence)
        try:
            evidence.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{evidence}: cannot create evidence directory: {exc.strerror or exc}") from None
    Video(args.video).close()  # fail on a bad video before loading the models
    out_path = Path(args.out) if args.out else None
    with atomic_output(out_path) as out, quiet_native_logs():
        progress = sys.stderr if sys.stderr.isatty() else None
        stats = replay_file(
            Path(args.video),
            booking,
            config,
            out,
            events=events,
            offset=args.offset,
            evidence=evidence,
            progress_stream=progress,
        )
    for note in stats.skipped_events:
        print(f"monitor: note: {args.events}: {note}", file=sys.stderr)
    return 0


__all__ = ["ProgressBar", "atomic_output", "replay_file", "run_replay"]

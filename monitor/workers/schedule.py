"""Which waiting frame a free analysis worker takes: pure functions of times and flags.

Theory of operation. A worker holds at most one frame at a time. A frame submitted while its worker
is busy with another source's frame *waits* in the pool, one per source, and a newer frame of the
same source replaces it (so what the worker gets is the newest, never one that aged in a queue).
When the worker is free it takes the waiting frame that matters most (:func:`pick`):

1. an *alarm* (the caller's flag: the picture of a live call changed, someone may have walked
   in): the policy's confirmation window starts with the frame that shows it;
1b. a source's *first* frame (the oldest first): until a camera is analysed once the call's
   security check cannot pass, and the policy's 5 s fail-closed window runs from the join, not
   from the first frame (media set-up takes ~2 s); served behind settling sources, cameras that
   join a busy worker together would wait seconds for a first result (four at once: 2.2-5.3 s),
   and the last would fail its call closed for ``analysis_error``;
1c. one whose source has a face *voting* (its latest result said so: a new face's first identity
   samples, or a face that may be a clear stranger, ``identity.TrackIdentity.voting``), the
   longest waiting first: an intruder's pause rests on those two or three samples, and behind the
   calm frames of other calls each would wait its turn. For at most ``VOTING_S`` of voting results
   in a row per source: a few samples' worth, so a face that keeps voting cannot hold the worker;
2. one whose source still has its face tracks (*kept*: served less than ``TRACK_KEEP_S`` ago; the
   tracker forgets a face unseen for 2.0 s) and is either steady or has been served in a row for
   less than ``SETTLE_S`` (it is settling: a few more frames make it steady and cheap); of
   those, the one closest to losing its tracks;
3. one that has waited ``STARVING_S`` (every source is served inside the policy's 5 s fail-closed
   window, whatever the others do);
4. an *urgent* one (the caller's flag: the call is not live and its security check needs fresh
   frames);
5. the one whose source was served longest ago (fair between sources).

Why 2: a source whose frames come further apart than the tracker's memory gets a new face track on
every frame, and a new track is the costliest frame there is (identity samples: ~200 ms of CPU
instead of ~10 ms). Served in turn, calls joining a busy worker would make every source's frames
that far apart; every frame is then new and costly, which keeps them far apart: analysis falls to
~1 frame a second per source, no face is identified, and no security check can pass (calls stay
paused or verifying). Letting a source that still has its tracks go on until it settles, one
source after another, gets every source back to steady, cheap frames; ``SETTLE_S`` stops a source
that never settles from holding the worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.analysis.settings import AnalysisSettings

#: A frame that has waited this long for its worker goes before every other waiting frame: long
#: enough for a source that still has its tracks to settle first (a few frames), short enough that
#: the frame's own analysis still ends inside the policy's 5 s fail-closed window.
STARVING_S = 3.0
#: A source served less than this long ago still has its face tracks (the tracker's memory,
#: ``AnalysisSettings.track_max_missed_s``): its frames go before those of sources that lost them.
TRACK_KEEP_S = AnalysisSettings().track_max_missed_s
#: ... while it is steady, or for at most this long of service in a row while it settles.
SETTLE_S = 2.5
#: A source whose results say a face is voting goes first for at most this long in a row: a new
#: face needs 3 samples 0.15 s apart and a clear stranger 2, so ~0.3-0.5 s at the busy pace, 1 s
#: when each frame takes 0.3 s of a contended worker; a face still voting after that is a grey-zone
#: one (``identity_unconfirmed`` reports it), with no pause waiting on its next sample.
VOTING_S = 1.0


@dataclass(frozen=True, slots=True)
class Waiting:
    """A frame waiting for its worker, as :func:`pick` sees it."""

    key: str
    since: float  # when it was submitted (monotonic)
    urgent: bool
    served_at: float  # when its source last had a frame sent to the worker
    kept: bool = False  # its source still has its tracks and is steady or settling
    alarm: bool = False  # the picture of a live call changed
    first: bool = False  # its source has never had a frame analysed
    voting: bool = False  # a face of its source awaits identity votes (for less than VOTING_S)


def pick(waiting: list[Waiting], now: float, starving_s: float = STARVING_S) -> str | None:
    """Which waiting frame the free worker takes (the module's theory): an alarm, else a source's
    first frame (the longest waiting first), else a voting one (the longest waiting first), else a
    kept one (the one served longest ago first),
    else one that has waited ``starving_s`` (the longest waiting first), else an urgent one, else
    the one whose source was served longest ago. None when nothing waits."""
    if not waiting:
        return None

    def rank(w: Waiting) -> tuple[float, float, bool, float, float, str]:
        if w.alarm:
            return (0, w.since, False, 0.0, 0.0, w.key)
        if w.first:
            return (0.5, w.since, False, 0.0, 0.0, w.key)
        if w.voting:
            return (0.75, w.since, False, 0.0, 0.0, w.key)
        if w.kept:  # the one closest to losing its tracks first
            return (1, w.served_at, False, 0.0, w.since, w.key)
        if now - w.since >= starving_s:
            return (2, w.since, False, 0.0, 0.0, w.key)
        return (3, 0.0, not w.urgent, w.served_at, w.since, w.key)

    return min(waiting, key=rank).key


def kept(served_at: float, settling_since: float, steady: bool, now: float) -> bool:
    """Whether a source's waiting frame ranks first: its tracks still hold and it is steady, or
    has been served in a row for less than ``SETTLE_S``."""
    return now - served_at < TRACK_KEEP_S and (steady or now - settling_since < SETTLE_S)


def voting(latest: bool, since: float, now: float) -> bool:
    """Whether a source's waiting frame ranks as voting: its latest result said a face is voting,
    in a run of such results that began at ``since`` less than ``VOTING_S`` ago."""
    return latest and now - since < VOTING_S


__all__ = ["SETTLE_S", "STARVING_S", "TRACK_KEEP_S", "VOTING_S", "Waiting", "kept", "pick", "voting"]

"""How the analysis pool shares a worker between sources: one frame with the worker at a time, the
newest frame of each source waiting, urgent frames (a changed picture, a call whose security check
needs fresh frames) before the others, and no source starved."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import av
import numpy as np
import pytest

from monitor.analysis.media import read_image
from monitor.analysis.settings import AnalysisSettings
from monitor.bookings import load_booking
from monitor.workers.analysis_pool import AnalysisPool, frame_planes
from monitor.workers.schedule import SETTLE_S, STARVING_S, TRACK_KEEP_S, VOTING_S, Waiting, kept, pick, voting
from policies.config import load_policy
from policies.events import Observation, Role
from signalling.client import load_clip

ROOT = Path(__file__).resolve().parents[3]


def test_a_free_worker_takes_an_urgent_frame_first_then_the_source_served_longest_ago() -> None:
    now = 100.0
    waiting = [
        Waiting("live-a", since=now - 0.1, urgent=False, served_at=now - 0.3),
        Waiting("live-b", since=now - 0.1, urgent=False, served_at=now - 0.5),
        Waiting("paused", since=now - 0.01, urgent=True, served_at=now - 0.05),
    ]
    assert pick(waiting, now) == "paused"
    assert pick(waiting[:2], now) == "live-b"  # fair: served longest ago
    assert pick([], now) is None


def test_a_source_that_still_has_its_face_tracks_goes_first_while_it_settles() -> None:
    """The collapse this prevents: sources served in turn further apart than the tracker's memory
    get a new (costly) face track on every frame, which keeps them that far apart."""
    now = 100.0
    settling = Waiting("settling", since=now - 0.3, urgent=False, served_at=now - 0.5, kept=True)
    starving = Waiting("starving", since=now - STARVING_S - 0.1, urgent=False, served_at=now - 9.0)
    urgent = Waiting("urgent", since=now - 0.3, urgent=True, served_at=now - 0.9)
    assert pick([urgent, starving, settling], now) == "settling"
    steady = Waiting("steady", since=now - 0.1, urgent=False, served_at=now - 0.6, kept=True)
    assert pick([settling, steady], now) == "steady"  # of the kept, the closest to losing its tracks
    assert pick([urgent, starving], now) == "starving"  # then one that waited too long
    assert pick([urgent, dataclasses.replace(starving, since=now - 0.1)], now) == "urgent"
    # ... but a live call's changed picture (someone walking in) goes before everything
    alarm = Waiting("alarm", since=now - 0.01, urgent=False, served_at=now - 0.4, alarm=True)
    assert pick([urgent, starving, settling, alarm], now) == "alarm"


def test_a_source_never_analysed_goes_right_after_an_alarm() -> None:
    """Four cameras joining one worker: the later ones must not wait while the first ones settle,
    or the fail-closed window (counted from the join) pauses the call for analysis_error."""
    now = 100.0
    steady = Waiting("steady", since=now - 0.1, urgent=False, served_at=now - 0.2, kept=True)
    settling = Waiting("settling", since=now - 0.2, urgent=False, served_at=now - 0.3, kept=True)
    new_late = Waiting("new-late", since=now - 0.2, urgent=True, served_at=0.0, first=True)
    new_early = Waiting("new-early", since=now - 0.4, urgent=True, served_at=0.0, first=True)
    assert pick([steady, settling, new_late], now) == "new-late"
    assert pick([steady, new_late, new_early], now) == "new-early"  # the longest waiting first
    alarm = Waiting("alarm", since=now - 0.01, urgent=False, served_at=now - 0.4, alarm=True)
    assert pick([new_early, alarm], now) == "alarm"


def test_a_face_awaiting_its_identity_votes_goes_before_calm_frames() -> None:
    """An intruder's pause rests on two or three identity samples of his face: each goes before the
    calm frames of other calls, after an alarm and a new camera's first frame."""
    now = 100.0
    calm = Waiting("calm", since=now - 0.3, urgent=False, served_at=now - 1.2, kept=True)
    starving = Waiting("starving", since=now - STARVING_S - 0.1, urgent=False, served_at=now - 9.0)
    urgent = Waiting("urgent", since=now - 0.3, urgent=True, served_at=now - 0.9)
    votes = Waiting("votes", since=now - 0.01, urgent=False, served_at=now - 0.05, kept=True, voting=True)
    assert pick([calm, starving, urgent, votes], now) == "votes"
    assert pick([calm, dataclasses.replace(votes, voting=False)], now) == "calm"  # served longer ago
    other = dataclasses.replace(votes, key="other-votes", since=now - 0.2)
    assert pick([votes, other], now) == "other-votes"  # the longest waiting first
    first = Waiting("first", since=now - 0.1, urgent=True, served_at=0.0, first=True)
    alarm = Waiting("alarm", since=now - 0.01, urgent=False, served_at=now - 0.4, alarm=True)
    assert pick([votes, first], now) == "first"
    assert pick([votes, first, alarm], now) == "alarm"


def test_a_source_ranks_as_voting_for_a_few_samples_only() -> None:
    now = 100.0
    assert voting(True, now - 0.2, now)
    assert not voting(False, now - 0.2, now)
    assert not voting(True, now - VOTING_S - 0.01, now)  # still voting after that: a grey-zone face
    # a few samples 0.15 s apart fit, even at a contended worker's 0.3 s a frame
    settings = AnalysisSettings()
    assert settings.votes * 0.3 <= VOTING_S < STARVING_S


def test_kept_means_tracks_still_held_and_steady_or_settling_for_a_while() -> None:
    now = 100.0
    recently = now - TRACK_KEEP_S + 0.1
    assert kept(recently, now - 60.0, True, now)  # steady: kept however long it has been served
    assert kept(recently, now - SETTLE_S + 0.1, False, now)  # settling
    assert not kept(recently, now - SETTLE_S - 0.1, False, now)  # has not settled: others' turn
    assert not kept(now - TRACK_KEEP_S - 0.1, now - 1.0, True, now)  # its tracks are gone
    assert AnalysisSettings().track_max_missed_s >= TRACK_KEEP_S  # the tracker's memory


def test_a_frame_that_waited_too_long_goes_before_urgent_ones() -> None:
    now = 100.0
    waiting = [
        Waiting("urgent", since=now - 0.01, urgent=True, served_at=now - 0.05),
        Waiting("starved-late", since=now - STARVING_S - 0.1, urgent=False, served_at=now - 5.0),
        Waiting("starved-early", since=now - STARVING_S - 0.3, urgent=False, served_at=now - 4.0),
    ]
    assert pick(waiting, now) == "starved-early"  # the longest waiting of the starving
    # a settling source holds the worker at most SETTLE_S, so a starving frame is analysed in time
    assert load_policy().analysis_timeout_s - 1.0 >= STARVING_S
    assert STARVING_S >= SETTLE_S


@pytest.mark.slow
async def test_the_worker_takes_the_urgent_and_newest_frames_not_the_first_come() -> None:
    """One worker, three sources, each analysed once already (a source's first frame has its own
    rank). While the worker analyses source a's frame, b submits twice (the second replaces the
    first) and c submits one urgent frame: c goes next, then b's newer frame."""
    order: list[tuple[str, float]] = []
    done = asyncio.Event()
    results = asyncio.Queue[str]()

    def on_result(key: str, observation: Observation, spent: float) -> None:
        results.put_nowait(key)
        if observation.t < 1.0:
            return  # the first round
        order.append((key, observation.t))
        if len(order) == 3:
            done.set()

    failures: list[str] = []
    # no frame counts as starved here, however slow the machine (that rule has its own test)
    pool = AnalysisPool(1, on_result, lambda key, detail: failures.append(detail), starving_s=600.0)
    await pool.start()
    try:
        booking = load_booking(ROOT / "fixtures" / "bookings" / "clean" / "booking.json", load_policy())
        image = load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=1)[0]
        planes = frame_planes(av.VideoFrame.from_ndarray(image, format="bgr24"))
        pool.add_booking("call", booking)
        for source in ("a", "b", "c"):
            pool.open(f"call/{source}", "call", "v1", Role.VISITOR)
        for source in ("a", "b", "c"):  # the first round, one source at a time
            assert pool.submit(f"call/{source}", planes, 0.5)
            assert await asyncio.wait_for(results.get(), 120) == f"call/{source}"
        await asyncio.sleep(TRACK_KEEP_S + 0.1)  # their tracks are gone: none is kept
        assert pool.submit("call/a", planes, 1.0)  # the worker is free: it goes at once
        assert pool.busy("call/a") and not pool.submit("call/a", planes, 1.1)  # one at a time
        assert pool.submit("call/b", planes, 1.0)  # waits
        assert not pool.busy("call/b")  # a waiting frame can still be replaced ...
        assert pool.submit("call/b", planes, 1.2)  # ... by a newer one
        assert pool.in_flight_t("call/b") == 1.2
        assert pool.submit("call/c", planes, 1.1, urgent=True)
        await asyncio.wait_for(done.wait(), 120)
        assert not failures, failures
        assert order == [("call/a", 1.0), ("call/c", 1.1), ("call/b", 1.2)]
        assert all(pool.stats().streams[f"call/{s}"].analysed == 2 for s in "abc")
    finally:
        await pool.stop()


@pytest.mark.slow
async def test_a_source_whose_face_is_voting_goes_before_one_served_earlier() -> None:
    """One worker, real frames. Source a shows a new face (its result says the face is voting:
    only one identity sample so far), c an empty scene. Both wait while x is analysed; c was served
    before a and is urgent, so a goes first only because its face awaits its votes."""
    import cv2

    order: list[str] = []
    results = asyncio.Queue[str]()

    def on_result(key: str, observation: Observation, spent: float) -> None:
        results.put_nowait(key)
        if observation.t >= 1.0:
            order.append(key)

    failures: list[str] = []
    pool = AnalysisPool(1, on_result, lambda key, detail: failures.append(detail), starving_s=600.0)
    await pool.start()
    try:
        booking = load_booking(ROOT / "fixtures" / "bookings" / "clean" / "booking.json", load_policy())
        face = load_clip(ROOT / "fixtures" / "clips" / "clean.webm", max_frames=1)[0]
        scene = read_image(ROOT / "fixtures" / "negatives" / "iceblock_no_face.jpg")
        empty = np.ascontiguousarray(cv2.resize(scene, (640, 480)), dtype=np.uint8)
        face_planes, empty_planes = (
            frame_planes(av.VideoFrame.from_ndarray(image, format="bgr24")) for image in (face, empty)
        )
        pool.add_booking("call", booking)
        for source in ("a", "c", "x"):
            pool.open(f"call/{source}", "call", "v1", Role.VISITOR)
        assert pool.submit("call/x", empty_planes, 0.4)  # first frames have their own rank: done first
        assert await asyncio.wait_for(results.get(), 120) == "call/x"
        assert pool.submit("call/c", empty_planes, 0.5)  # served first ...
        assert pool.submit("call/a", face_planes, 0.5)  # ... then a (a new face: one sample, voting)
        assert [await asyncio.wait_for(results.get(), 120) for _ in range(2)] == ["call/c", "call/a"]
        assert pool.submit("call/x", empty_planes, 1.0)  # the worker is busy with x
        assert pool.submit("call/c", empty_planes, 1.1, urgent=True)
        assert pool.submit("call/a", face_planes, 1.2)
        while len(order) < 3:
            await asyncio.wait_for(results.get(), 120)
        assert not failures, failures
        assert order == ["call/x", "call/a", "call/c"]
    finally:
        await pool.stop()

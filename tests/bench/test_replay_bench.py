"""The replay benchmark's steady-state call: the clean clip remuxed into a seamless long call."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import av
import numpy as np

from bench.replay import STEADY_S, _seamless

CLEAN = Path(__file__).resolve().parents[2] / "fixtures" / "clips" / "clean.webm"


def test_the_long_call_loops_where_the_clip_repeats_its_first_frame(tmp_path: Path) -> None:
    out = tmp_path / "long.webm"
    seam = _seamless(CLEAN, out)
    # clean.webm ping-pongs a 72-frame source: frame 284 (two periods) shows frame 0 again
    assert seam["frames_looped"] == 284
    assert seam["seam_luma_change"] <= seam["median_frame_to_frame_luma_change"]
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        luma = [f.to_ndarray(format="gray").astype(np.int16) for f in container.decode(stream)]
    assert len(luma) == 284 * seam["times"] and len(luma) >= STEADY_S * 30
    # no jump at the seams: each is an ordinary frame-to-frame change of the clip (cutting back to
    # the start of the whole 10 s clip instead changes the picture by 14 grey levels on average)
    steps = [float(np.abs(b - a).mean()) for a, b in pairwise(luma)]
    ordinary = max(steps[:283])
    seams = [steps[k * 284 - 1] for k in range(1, seam["times"])]
    assert max(seams) <= ordinary < 6

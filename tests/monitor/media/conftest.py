"""Every test in this room connects real aiortc peers over 127.0.0.1 (``loopback_ice``, from
``support.fixtures``) and most send the clean fixture clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signalling.client import load_clip

CLEAN_CLIP = Path(__file__).resolve().parents[3] / "fixtures" / "clips" / "clean.webm"


@pytest.fixture(autouse=True)
def _loopback(loopback_ice: None) -> None:
    """Loopback ICE candidates for each test (the fixture does the work)."""


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """The clean fixture clip's first 60 frames (the booked man alone)."""
    return load_clip(CLEAN_CLIP, max_frames=60)

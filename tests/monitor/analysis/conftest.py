"""Shared real media and models for the analysis stage tests (models load once per session)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from analysis_media import clip

from monitor.analysis.detect import FaceDetector
from monitor.analysis.embed import Embedder
from monitor.analysis.landmarks import LandmarkStage
from monitor.analysis.runtime import limit_threads

limit_threads()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", "ignore:SymbolDatabase.GetPrototype:UserWarning")


@pytest.fixture(scope="session")
def detector() -> Iterator[FaceDetector]:
    d = FaceDetector()
    yield d
    d.close()


@pytest.fixture(scope="session")
def mesh() -> Iterator[LandmarkStage]:
    m = LandmarkStage()
    yield m
    m.close()


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    e = Embedder()
    yield e
    e.close()


@pytest.fixture(scope="session")
def man_clip() -> list[tuple[int, float, np.ndarray]]:
    return clip("single_face.mp4")


@pytest.fixture(scope="session")
def cartoon_clip() -> list[tuple[int, float, np.ndarray]]:
    return clip("no_face.mp4")

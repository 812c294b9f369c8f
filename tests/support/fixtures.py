"""Fixtures any test may ask for by name: the root conftest.py loads this module as a pytest plugin
(``pytest_plugins``), so no test room needs its own copy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import ice


@pytest.fixture
def loopback_ice() -> Iterator[None]:
    """Real aiortc peers in the test connect over 127.0.0.1 (see ``support.ice``)."""
    with ice.loopback_ice():
        yield

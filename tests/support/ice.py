"""Loopback ICE for tests: aioice never offers 127.0.0.1 as a candidate, so peers on a loopback-only
machine would never connect. One context manager (``loopback_ice``) for code, one fixture of the same
name (``support.fixtures``) for tests; both go through ``monitor.media.patches`` and restore aioice's
previous choice on exit."""

from __future__ import annotations

from contextlib import AbstractContextManager

from monitor.media import patches

LOOPBACK = "127.0.0.1"


def loopback_ice() -> AbstractContextManager[None]:
    """aioice offers only 127.0.0.1 as a host candidate inside the ``with`` block."""
    return patches.ice_host_addresses([LOOPBACK])

"""Waiting for a condition in a live test: poll it, fail with what was awaited when the deadline
passes (timeouts here are generous bounds for a loaded machine, never timing targets)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    check: Callable[[], object], timeout: float, what: str = "the condition", every: float = 0.1
) -> None:
    """Return once ``check()`` is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)

"""The Chromium every browser test drives: Debian's, through Playwright (never ``playwright
install``: it cannot download here). One place for its path, the flags every test needs, and the
module-level skip when it is not installed."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"
#: headless in a container, and quiet: no sandbox, GPU, first-run, sync or background traffic
ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: getUserMedia answered at once, by the fake camera and microphone
FAKE_MEDIA = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")


def require_chromium() -> None:
    """Skip the calling test module when Chromium is not installed."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (make system installs it)", allow_module_level=True)

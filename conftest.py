"""pytest: the project root comes first on sys.path (pytest puts this file's directory there, so
the real packages always win) and tests/ last, for the helpers the test rooms share (the
``support`` package: ``from support.live_server import serving``). tests/ must never come first:
its policies/, monitor/ and signalling/ folders would shadow the packages as namespace packages.
The shared fixtures (``support.fixtures``, e.g. ``loopback_ice``) are loaded here as a plugin."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

pytest_plugins = ["support.fixtures", "support.redis_server"]

"""pytest: the project root comes first on sys.path (pytest puts this file's directory there, so
the real packages always win) and tests/ last, for the helpers the test directories share (such as
``live_server``). tests/ must never come first: its policies/, monitor/ and signalling/ folders
would shadow the packages as namespace packages."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

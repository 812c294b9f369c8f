"""``monitor serve`` as a user runs it: a separate process, and what it prints when it is ready."""

from __future__ import annotations

import json
import subprocess
import sys

#: The command line, run with this interpreter (the checkout under test, not an installed copy).
MONITOR = [sys.executable, "-m", "monitor.cli"]


def printed_links(process: subprocess.Popen[str]) -> tuple[list[dict[str, str]], dict[str, str]]:
    """What a starting ``monitor serve`` prints on stdout: one JSON line per join link, then the
    console's line (returned second). Fails with its stderr if it stops before the console line."""
    assert process.stdout is not None
    links: list[dict[str, str]] = []
    while True:
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else "no output"
        record = json.loads(line)
        if "console" in record:
            return links, record
        links.append(record)

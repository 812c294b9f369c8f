"""Pause latency when the booked visitor's camera cuts to one showing only an unbooked person:
``bench.pause_latency --scenario swap`` (see its theory), as a benchmark of its own so that
``python -m bench`` runs it and saves ``bench/results/pause_latency_swap.json``."""

from __future__ import annotations

import sys

from bench import pause_latency


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return pause_latency.main(["--scenario", "swap", *args])


if __name__ == "__main__":
    sys.exit(main())

"""Audit records appended per second on SQLite and on PostgreSQL, one writer and four.

``python -m bench.store [--json bench/results/store.json] [--reps 3] [--db-url postgresql://...]``

Each run appends to a new database, durably (SQLite ``synchronous=FULL``; PostgreSQL with
``fsync`` on): one commit per record (``AuditLog.append``, as an admin command writes), and the
server's way (``AuditWriter``: a thread writing batches, pipelined on PostgreSQL), by one process and
by four processes at once (as four nodes would), all appending to the one chain, which is verified
after each run. PostgreSQL is a throwaway local server (``tools/postgres_server.py``) unless
``--db-url`` names a server whose user may create databases. Reported: the median records per
second over ``--reps`` runs (and the range).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import RESULTS, machine, write_json

RECORDS = {"commit": 150, "batch": 1500}  # per run (one commit per record is ~20x slower)


def _writer(where: str, records: int, mode: str, start: Any, ready: Any, out: Any) -> None:
    from monitor.store.audit import AuditLog
    from monitor.store.audit_writer import AuditWriter
    from monitor.store.database import Store

    store = Store(where)
    log, me = AuditLog(store), f"w{os.getpid()}"
    writer = AuditWriter(store.location, store.clock) if mode == "batch" else None
    ready.put(me)
    start.wait()
    if writer is None:
        for n in range(records):
            log.append("alert", {"n": n}, prison="HMP Bench", call_id=me)
    else:
        futures = [
            writer.submit("alert", {"n": n}, prison="HMP Bench", call_id=me, actor="policy", evidence=None)
            for n in range(records)
        ]
        for future in futures:
            future.result(600)
        writer.close()
    store.close()
    out.put(me)


def appends_per_s(where: str, processes: int, mode: str) -> float:
    """Records per second of ``processes`` writers appending ``RECORDS[mode]`` between them."""
    from monitor.store.audit import AuditLog
    from monitor.store.database import Store

    with Store(where) as store:
        AuditLog(store).append("alert", {"warm": True}, prison="HMP Bench")  # keys the chain
    each = RECORDS[mode] // processes
    # spawned, not forked: a fork of a process with threads and open connections (a test run's)
    # can inherit a lock held mid-operation or a connection's socket
    ctx = mp.get_context("spawn")
    start, ready, out = ctx.Event(), ctx.Queue(), ctx.Queue()
    workers = [
        ctx.Process(target=_writer, args=(where, each, mode, start, ready, out)) for _ in range(processes)
    ]
    for w in workers:
        w.start()
    for _ in workers:  # every writer has opened its store
        ready.get(timeout=120)
    began = time.perf_counter()
    start.set()
    for w in workers:
        w.join()
    wall = time.perf_counter() - began
    if any(w.exitcode != 0 for w in workers):
        raise RuntimeError("a writer failed")
    with Store(where) as store:
        verified = AuditLog(store).verify()
    if not verified.ok or verified.records != processes * each + 1:
        raise RuntimeError(f"the chain does not verify: {verified}")
    return processes * each / wall


def measure(new_store: Callable[[str], str], reps: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for mode in ("commit", "batch"):
        for processes in (1, 4):
            for engine in ("sqlite", "postgresql"):
                runs = [appends_per_s(new_store(engine), processes, mode) for _ in range(reps)]
                results[f"{engine}.{mode}.{processes}"] = {
                    "median": round(statistics.median(runs), 1),
                    "min": round(min(runs), 1),
                    "max": round(max(runs), 1),
                }
                print(engine, mode, processes, [round(r) for r in runs], file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=RESULTS / "store.json")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--db-url", help="a PostgreSQL server to use (default: a throwaway local one)")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="bench-store-"))
    os.environ["MONITOR_STORE_DIR"] = str(folder)  # the PostgreSQL stores' key and checkpoint files
    server = None
    if args.db_url is None:
        from tools.postgres_server import PostgresServer, binaries

        found = binaries()
        if found is None:
            print("bench.store: PostgreSQL is not installed (make system installs it)", file=sys.stderr)
            return 1
        server = PostgresServer(found, durable=True)
        server.start()
    counter = iter(range(1, 10_000))

    def new_store(engine: str) -> str:
        if engine == "sqlite":
            return str(folder / f"bench-{next(counter)}.db")
        if server is not None:
            return server.create_database(migrated=False)
        import psycopg

        name = f"bench_store_{os.getpid()}_{next(counter)}"
        with psycopg.connect(args.db_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{args.db_url.rsplit('/', 1)[0]}/{name}"

    try:
        found_machine = machine()
        results = measure(new_store, args.reps)
    finally:
        if server is not None:
            server.stop()
    table = [
        [
            f"{key.split('.')[0]}, {'one commit per record' if '.commit.' in key else 'writer thread'}, "
            f"{key.split('.')[2]} writer(s)",
            value["median"],
            f"records/s ({value['min']:.0f}-{value['max']:.0f})",
        ]
        for key, value in results.items()
    ]
    write_json(args.json, {"machine": found_machine, "appends": results, "table": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())

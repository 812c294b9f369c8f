"""The store benchmark's run: four writer processes append to one chain at once, on both engines,
and the run verifies the chain (a tiny run: the rates themselves are the benchmark's business)."""

from __future__ import annotations

import pytest

from bench import store as bench_store


@pytest.mark.parametrize("mode", ["commit", "batch"])
def test_four_writers_append_one_verified_chain(
    store_at: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_store, "RECORDS", {"commit": 12, "batch": 40})
    rate = bench_store.appends_per_s(store_at, 4, mode)
    assert rate > 0
    from monitor.store.audit import AuditLog
    from monitor.store.database import Store

    with Store(store_at) as store:
        records = AuditLog(store).since("HMP Bench", 0, 1000)
    assert len(records) == 1 + bench_store.RECORDS[mode]  # the warm-up record and every append
    assert len({r.call_id for r in records[1:]}) == 4

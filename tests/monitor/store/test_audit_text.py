"""Defence in depth: a record holding text UTF-8 cannot encode (a lone surrogate, which every
parser refuses) is still hashed, stored and verified, so such a string can never stop the audit
log; ordinary text is stored exactly as before (UTF-8, not escaped)."""

from __future__ import annotations

from pathlib import Path

from monitor.store.audit import AuditLog, canonical_json
from monitor.store.database import Store


def test_a_lone_surrogate_is_stored_escaped_and_the_chain_verifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "monitor.db")
    log = AuditLog(store)
    log.append("alert", {"reason": "capture_attempt", "detail": "Zoë"}, prison="HMP Example", call_id="c1")
    odd = log.append(
        "alert", {"reason": "capture_attempt", "detail": "x\ud800"}, prison="HMP Example", call_id="c1"
    )
    log.append("alert", {"reason": "capture_attempt", "detail": "after"}, prison="HMP Example", call_id="c1")
    assert log.verify().ok and log.verify().records == 3
    assert log.get(odd.id) == odd and odd.data["detail"] == "x\ud800"
    stored = [row[0] for row in store.db.execute("SELECT data FROM audit ORDER BY id")]
    assert stored[0] == '{"detail":"Zoë","reason":"capture_attempt"}'  # UTF-8 as always
    assert stored[1] == '{"detail":"x\\ud800","reason":"capture_attempt"}'
    store.close()


def test_canonical_json_is_unchanged_for_encodable_text() -> None:
    value = {"b": "é 王 🙂", "a": [1, 2.5, None]}
    assert canonical_json(value) == '{"a":[1,2.5,null],"b":"é 王 🙂"}'
    canonical_json({"x": "\udfff"}).encode("utf-8")

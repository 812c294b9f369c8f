"""What a rebuilt call's carried-over pause says happened before (``FailClosed.rebuilt_after``),
read from the store a node shares with the others: its server restarted, or the node that last ran
the call (``calls.node``) stopped and the call moved here. On SQLite and on PostgreSQL."""

from __future__ import annotations

from support.cluster import book
from support.live_server import booking_now

from monitor.hub import Hub
from monitor.server.fail_closed import FailClosed
from monitor.store.database import Store
from policies.config import load_policy


def rebuilt_after(store: Store, call_id: str) -> str:
    return FailClosed(store, Hub(), load_policy()).rebuilt_after(call_id)


def test_a_call_another_node_ran_is_rebuilt_as_moved_from_that_node(store_at: str) -> None:
    with Store(store_at, node="b") as b:
        book(b, booking_now("moved"))
        book(b, booking_now("never-ran"))
        b.set_call_state("moved", "paused")
    with Store(store_at, node="a") as a:
        assert rebuilt_after(a, "moved") == "node b stopped; the call moved to node a"
        assert rebuilt_after(a, "never-ran") == "the server restarted"  # no node has run it
    with Store(store_at, node="b") as b:  # node b itself, started again
        assert rebuilt_after(b, "moved") == "the server restarted"
    with Store(store_at) as single:  # one server, no node names
        assert rebuilt_after(single, "moved") == "the server restarted"

"""Several ``monitor serve`` nodes as one service: ``monitor serve --redis redis://...``.

Theory of operation (LiveKit's model). The nodes share the store (PostgreSQL: bookings, join
tokens, the audit log) and Redis (the registry and the bus). Every node reports its measured load
every second (``registry.py``); any node accepts a device, and the node that gets a call's first
device places the call on the least-loaded node that fits (``placement.py``, pure), claiming it
atomically in Redis so no two nodes ever start it; the device's signalling is proxied or
redirected to that node (``routing.py``) while its media go straight there. A call never spans
nodes. Consoles on every node see every call of their prison: the audit records are in the shared
database, the bus wakes every node's consoles when one is committed, and a staff action or a watch
of a call on another node is a request to that node (``bus.py``, ``remote.py``). ``node.py`` puts
it together for one server: heartbeat, routing, draining, and letting go of calls another node
has taken over. ``metrics.py`` adds the cluster's figures to /metrics; ``command.py`` is
``monitor node`` (list, drain, resume).

Without ``--redis`` none of this runs: one server, as before.

May import: ``monitor.call`` (admission's load rule, seats), ``monitor.console`` (a watch's peer),
``signalling`` and the lower floors; never ``monitor.server`` (which hands itself in as
``node.Host``).
"""

#: How a device whose call runs on another node gets there (``monitor serve --routing``, routing.py).
ROUTINGS = ("proxy", "redirect")

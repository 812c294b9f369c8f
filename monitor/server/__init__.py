"""``monitor serve``: one port for the join pages, the signalling WebSocket, the console and /metrics.

Theory of operation. ``serve.py`` builds the server from its flags (``args.py``): the store, the
calls it has booked, the analysis pool or the relay workers, the console, and the HTTP router;
``signalling.py`` is the thin adapter between the call WebSocket (messages parsed in
``signalling.messages``) and a call; ``metrics.py`` serves /metrics from what each part reports.

May import: every other room of ``monitor`` except ``monitor.cli``.
"""

"""Calls hosted in relay worker processes (``monitor serve --relay-workers N``).

Theory of operation. The front process keeps the port, the store and the console; each call runs
whole in one worker process (its peers, media, analysis and policy session), placed there by
``pool.py`` when it is loaded and never split. ``worker.py`` is the child's main loop around
``monitor.call``; ``ipc.py`` is the one place the pipe's messages are defined and checked;
``remote_call.py`` is the front's stand-in for a call that runs in a worker.

May import: ``monitor.call`` and everything below it, ``monitor.console`` (a staff member's watch
runs where the call's media is), ``monitor.hub``, ``monitor.load``, ``signalling``, ``policies``.
"""

"""What the test rooms share (tests/ is on sys.path through the root conftest.py, so a test writes
``from support.live_server import serving``).

- ``ice``: loopback ICE candidates for real aiortc peers (through ``monitor.media.patches``).
- ``fixtures``: the pytest fixtures every room may ask for by name (a plugin the root conftest.py
  loads), such as ``loopback_ice``.
- ``live_server``: the real ``monitor serve`` server on loopback, its bookings, devices and clips.
- ``serve_process``: ``monitor serve`` as a separate process, and the links it prints.
- ``waiting``: polling a condition with a deadline.
- ``pictures``: which clip or camera a received picture shows.
- ``chromium``: the Debian Chromium the browser tests drive.
- ``raw_ws``: a bare WebSocket client for peers that misbehave on purpose.

Helpers that serve a single room stay beside its tests (``policy_helpers``, ``console_site``,
``analysis_media``).
"""

"""``monitor replay``: a recorded call through the same analysis and policy as a live call.

Theory of operation: see ``replay.py``. The recording's frames are decoded and go through the one
frame path a live call uses (``monitor/analysis/frame_path.py``: sampled on the same cadence,
analysed by the same pipeline, here inline), and the observations go to the same policy session;
its decisions are written by the same timeline encoder. ``events.py`` reads the injected
``--events``, ``evidence.py`` draws an alert's evidence frame, ``command.py`` is the command
(atomic output, progress bar) and :func:`~monitor.replay.command.replay_file`.

May import: ``monitor.analysis``, ``monitor.media`` (to read files), ``monitor.record`` (the
timeline), ``monitor.bookings``, ``monitor.errors`` and ``policies``.
"""

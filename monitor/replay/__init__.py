"""``monitor replay``: a recorded call through the same analysis and policy as a live call.

Theory of operation: see ``replay.py``. The recording's frames are decoded, sampled on the same
cadence a live call uses, analysed by the same pipeline, and the observations go to the same
policy session; its decisions are written by the same timeline encoder.

May import: ``monitor.analysis``, ``monitor.media`` (to read files), ``monitor.record`` (the
timeline), ``monitor.bookings``, ``monitor.errors`` and ``policies``.
"""

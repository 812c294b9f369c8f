"""What a call leaves behind: its timeline and its recordings.

Theory of operation. ``timeline.py`` is the one encoder of the timeline contract (JSON lines of the
policy's decisions), shared by live calls and replay. ``camera_recorder.py`` archives each camera
as received (VP8 muxed, never decoded); ``feed_recorder.py`` archives decoded frames (the
analysed ones, and audio) on a writer thread so no encoding runs on the event loop.

May import: ``monitor.media`` and ``policies``.
"""

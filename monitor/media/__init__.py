"""Media on the wire: what comes in from a device, what goes out to the others, and the pause gate.

Theory of operation. Every incoming camera or microphone becomes a :class:`~monitor.media.tracks.Feed`
that is consumed from the moment it arrives (aiortc leaks unread tracks). What a device receives
are gated tracks over the other side's feeds: while the call's :class:`~monitor.media.tracks.Gate`
is open they pass the feed on, otherwise a slate and silence, on one continuous clock.
``forward.py`` / ``forward_audio.py`` pass received VP8 and Opus on as they are (``encoded.py`` tees
them off aiortc's receiver), ``jitter.py`` recovers from losses, ``tracks.py`` is the
decode/re-encode fallback and the slates, ``video_file.py`` reads recorded files for replay, and
``patches.py`` holds every change to aiortc's and aioice's private parts.

May import: ``monitor.errors`` and third-party media libraries; nothing else of the project.
"""

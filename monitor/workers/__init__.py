"""Worker processes that run the frame analysis of live cameras off the event loop.

Theory of operation. :class:`~monitor.workers.analysis_pool.AnalysisPool` keeps one spawned process
per worker, each hosting the :class:`~monitor.analysis.pipeline.FramePipeline` of the cameras
assigned to it. The event loop hands over the newest frame of a camera (never a queue of them),
a scheduler picks which waiting frame a free worker takes, and results come back on a pipe the
loop watches; a worker that dies or hangs is restarted and its cameras fail closed meanwhile.

May import: ``monitor.analysis`` and ``policies``.
"""

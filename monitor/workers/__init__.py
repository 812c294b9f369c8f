"""Worker processes that run the frame analysis of live cameras off the event loop.

Theory of operation. The event loop hands over the newest frame of a camera (never a queue of
them) to :class:`~monitor.workers.analysis_pool.AnalysisPool`, the supervisor: it keeps one spawned
process per worker, assigns each camera to one of them for good, holds at most one waiting frame
per camera, watches the results pipe, and restarts a worker that dies or hangs (its cameras fail
closed meanwhile and are re-opened on the new process). Which waiting frame a free worker takes is
decided by ``schedule.py``, pure functions of times and flags. ``analysis_worker.py`` is the child
process: it warms its models up, then hosts the :class:`~monitor.analysis.pipeline.FramePipeline`
of each camera assigned to it. ``messages.py`` holds the pipe's messages, one frozen class per kind.

May import: ``monitor.analysis`` and ``policies``.
"""

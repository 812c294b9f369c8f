"""Frame analysis: one video frame in, one :class:`policies.events.Observation` out.

Stages (each a small module with typed frozen inputs/outputs, testable alone on real media):
``detect`` (BlazeFace) → ``track`` (stable ids) → ``landmarks`` (face mesh; rejects detector blips)
→ ``hands`` (a hand over the face) → ``visibility`` → ``lighting`` → ``identity`` (dlib, sampled and
voted per track), and ``scene`` (a moving camera, a busy background behind the people).
``pipeline.FramePipeline`` chains them per source; ``enrol`` turns reference photos into embeddings;
``cadence`` decides which frames of a camera or a recording are analysed at all; ``frame_path`` is
the one frame path (sampler → analysis → observation) live calls, replay and the benches compose;
``evidence`` draws what the analysis saw on a frame.

May import: ``monitor.errors`` and ``policies``; no asyncio, no I/O beyond reading model files.
"""

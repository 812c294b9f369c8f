"""One live call: its seats, devices, media routing, analysed cameras and policy session.

Theory of operation. A :class:`~monitor.call.call.Call` is made from a booking. Everything that
happens to it (a device joins or leaves, an analysed frame, a client event, a staff action, the
clock) becomes a ``policies`` event stamped with call time and goes to its one ``Session``; the
decisions that come back are applied in one place (``effects.py``): the pause gate, what each
device is told (``explain.py``), what staff see (the hub) and the timeline. The parts:

- ``seats.py``: each booked person's seat, who may take it and when, whose media it receives;
- ``peer.py``: each device's peer connection, the feeds its tracks become, the gated tracks it
  receives;
- ``sampler.py``: each analysed camera on the one frame path (``monitor/analysis/frame_path.py``,
  which replay and the benches share) into the worker pool (``PoolAnalysis``);
- ``recording.py``: the call's archive and its failures (a recording that cannot be written is
  the fault ``recording_error`` until it is written again);
- ``held.py``: what the call's records say about its pause, the reasons a call rebuilt after a
  restart carries over (and the console's "needs staff");
- ``call.py``: the :class:`~monitor.call.call.Call` that puts them together, its ticker and its
  session;
- ``handle.py``: :class:`~monitor.call.handle.CallHandle`, what the server's parts may ask of a
  call wherever it runs (``Call`` here, ``monitor.relay_workers.remote_call.RemoteCall`` in a
  relay worker);
- ``calls.py``: :class:`~monitor.call.calls.Calls`, every call of the process by id and by join
  token, and where the worker pool's results go; ``admission.py`` decides whether a new call may
  start.

May import: ``monitor.analysis``, ``monitor.media``, ``monitor.workers``, ``monitor.record``,
``monitor.hub``, ``monitor.errors``, ``signalling`` (the wire messages) and ``policies``.
"""

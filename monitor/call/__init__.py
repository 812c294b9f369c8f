"""One live call: its seats, devices, media routing, analysis sampling and policy session.

Theory of operation. A :class:`~monitor.call.call.Call` is made from a booking. Everything that
happens to it (a device joins or leaves, an analysed frame, a client event, a staff action, the
clock) becomes a ``policies`` event stamped with call time and goes to its one ``Session``; the
decisions that come back are applied in one place: the pause gate, what each device is told,
what staff see (the hub) and the timeline. :class:`~monitor.call.call.Calls` holds every call of
the process, by id and by join token; ``admission.py`` decides whether a new call may start.

May import: ``monitor.analysis``, ``monitor.media``, ``monitor.workers``, ``monitor.record``,
``monitor.hub``, ``monitor.errors``, ``signalling`` (the wire messages) and ``policies``.
"""

"""The call's rules as a pure, synchronous core.

Events in (stamped with media time), decisions out. Nothing in this package does I/O, reads a
clock, or imports from ``monitor``/``signalling``: that is what lets a live call and the replay of
its recording reach the same decisions.
"""

"""The store: SQLite tables for prisoners, visitors, bookings, join links and staff, and the audit log.

Theory of operation. ``database.py`` opens the file and applies the numbered migrations in
``migrations/``; ``auth.py`` holds staff accounts and sessions; ``audit.py`` is the append-only,
hash-chained audit log, ``audit_writer.py`` writes it from one thread (no commit on the event
loop) and ``audit_recorder.py`` turns what the calls publish on the hub into audit records.

May import: ``monitor.hub``, ``monitor.errors`` and ``policies``.
"""

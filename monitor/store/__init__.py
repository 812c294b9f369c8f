"""The store: SQLite tables for prisoners, visitors, bookings, join links and staff, and the audit log.

Theory of operation. ``database.py`` opens the file and applies the numbered migrations in
``migrations/``; ``lock.py`` keeps a second ``monitor serve`` off the same file; ``auth.py`` holds
staff accounts, sessions and sign-in throttling; ``audit.py`` is the append-only audit log, a hash
chain keyed with a secret kept outside the database and anchored in a checkpoint file outside it
(``audit_chain.py``; records in ``audit_record.py``, checking in ``audit_verify.py``);
``audit_writer.py`` writes it from one thread (no commit on the event loop; bounded, retried,
never losing a record) and ``audit_recorder.py`` turns what the calls publish on the hub into
audit records.

May import: ``monitor.hub``, ``monitor.errors`` and ``policies``.
"""

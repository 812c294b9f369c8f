"""The store: tables for prisoners, visitors, bookings, join links and staff, and the audit log, on
SQLite (the embedded default) or PostgreSQL (several nodes sharing one database).

Theory of operation. ``sql.py`` is the one database interface (where a store is, a connection that
runs the same SQL on either engine, rows, errors; ``sql_postgres.py`` is PostgreSQL's side and its
locks); ``migrate.py`` applies the numbered migrations in ``migrations/`` on either engine;
``database.py`` opens the store (``records.py``: the values it hands out); ``lock.py`` keeps a
second ``monitor serve`` off the same file (on PostgreSQL, off the same node name); ``auth.py`` holds
staff accounts, sessions and sign-in throttling; ``audit.py`` is the append-only audit log, a hash
chain keyed with a secret kept outside the database and anchored in a checkpoint file outside it
(``audit_chain.py``; records in ``audit_record.py``, checking in ``audit_verify.py``);
``audit_writer.py`` writes it from one thread (no commit on the event loop; bounded, retried,
never losing a record) and ``audit_recorder.py`` turns what the calls publish on the hub into
audit records.
The families' side keeps its tables and rules here too (migration 003): ``prisons.py`` (call
settings), ``family_accounts.py``, ``family_sessions.py``, ``family_contacts.py``,
``family_calls.py``, ``family_requests.py``, ``documents.py`` (ID documents encrypted at rest),
``booking_rules.py`` (shared with ``monitor book``) and, for the console, ``family_staff.py``.

May import: ``monitor.hub``, ``monitor.errors`` and ``policies`` (and psycopg, only in ``sql_postgres.py``).
"""

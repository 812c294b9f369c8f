-- 001: the first schema. Times are UTC epoch seconds (REAL) unless the column name ends in _iso.

CREATE TABLE prisoners (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    prison      TEXT NOT NULL,
    created_at  REAL NOT NULL
);

CREATE TABLE prisoner_photos (
    id           INTEGER PRIMARY KEY,
    prisoner_id  TEXT NOT NULL REFERENCES prisoners(id),
    path         TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    embedding    BLOB NOT NULL           -- float64 little-endian vector
);

CREATE TABLE visitors (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    date_of_birth  TEXT NOT NULL,        -- YYYY-MM-DD
    created_at     REAL NOT NULL
);

CREATE TABLE visitor_photos (
    id          INTEGER PRIMARY KEY,
    visitor_id  TEXT NOT NULL REFERENCES visitors(id),
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    embedding   BLOB NOT NULL
);

-- A prisoner's approved visitor list.
CREATE TABLE visitor_list (
    prisoner_id  TEXT NOT NULL REFERENCES prisoners(id),
    visitor_id   TEXT NOT NULL REFERENCES visitors(id),
    approved_at  REAL NOT NULL,
    PRIMARY KEY (prisoner_id, visitor_id)
);

CREATE TABLE bookings (
    call_id      TEXT PRIMARY KEY,
    prisoner_id  TEXT NOT NULL REFERENCES prisoners(id),
    prison       TEXT NOT NULL,
    starts_at    REAL NOT NULL,
    ends_at      REAL NOT NULL,
    starts_iso   TEXT NOT NULL,          -- as booked, with its timezone
    ends_iso     TEXT NOT NULL,
    document     TEXT NOT NULL,          -- the validated booking JSON (policies.booking format)
    created_at   REAL NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX bookings_prisoner_time ON bookings (prisoner_id, starts_at);
CREATE INDEX bookings_prison_time ON bookings (prison, starts_at);

CREATE TABLE booking_visitors (
    call_id      TEXT NOT NULL REFERENCES bookings(call_id),
    visitor_id   TEXT NOT NULL REFERENCES visitors(id),
    main_caller  INTEGER NOT NULL CHECK (main_caller IN (0, 1)),
    position     INTEGER NOT NULL,
    PRIMARY KEY (call_id, visitor_id)
);

-- The latest known state of each call; kept in step with the audit log's state records.
CREATE TABLE calls (
    call_id      TEXT PRIMARY KEY REFERENCES bookings(call_id),
    state        TEXT NOT NULL,
    interrupted  INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
    updated_at   REAL NOT NULL
);

-- Participant join tokens: only the SHA-256 of the token is kept.
CREATE TABLE join_tokens (
    token_sha256  TEXT PRIMARY KEY,
    call_id       TEXT NOT NULL REFERENCES bookings(call_id),
    participant   TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('visitor', 'prisoner')),
    not_before    REAL NOT NULL,
    not_after     REAL NOT NULL,
    revoked_at    REAL,
    used_at       REAL
);
CREATE INDEX join_tokens_call ON join_tokens (call_id, participant);

CREATE TABLE staff (
    id             INTEGER PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    prison         TEXT NOT NULL,
    password_hash  TEXT NOT NULL,        -- scrypt$N$r$p$salt$hash (base64)
    created_at     REAL NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
);

-- Console sessions: only the SHA-256 of the cookie value is kept.
CREATE TABLE staff_sessions (
    token_sha256  TEXT PRIMARY KEY,
    staff_id      INTEGER NOT NULL REFERENCES staff(id),
    created_at    REAL NOT NULL,
    expires_at    REAL NOT NULL,
    revoked_at    REAL
);

CREATE TABLE login_attempts (
    id        INTEGER PRIMARY KEY,
    username  TEXT NOT NULL,
    address   TEXT NOT NULL,
    at        REAL NOT NULL,
    ok        INTEGER NOT NULL CHECK (ok IN (0, 1))
);
CREATE INDEX login_attempts_user ON login_attempts (username, at);
CREATE INDEX login_attempts_address ON login_attempts (address, at);

-- Append-only audit log. hash = SHA-256(prev_hash + canonical JSON of the record), see monitor/audit.py.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,           -- wall-clock time the record was written
    prison      TEXT NOT NULL,
    call_id     TEXT,                    -- NULL for records about no call (e.g. a staff login)
    kind        TEXT NOT NULL,
    actor       TEXT NOT NULL,           -- 'policy', 'staff:<username>', 'system', ...
    data        TEXT NOT NULL,           -- canonical JSON object
    evidence    TEXT,                    -- SHA-256 of an evidence file under the data dir
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
);
CREATE INDEX audit_prison ON audit (prison, id);
CREATE INDEX audit_call ON audit (call_id, id);

-- engine: sqlite
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- engine: postgresql
-- The same refusals (as integrity errors, as SQLite's RAISE(ABORT) is), and TRUNCATE too.
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();

CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

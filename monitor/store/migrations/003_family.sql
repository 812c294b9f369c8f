-- 003: the families' side. Prisons' call settings; family accounts, their sessions and e-mail
-- confirmations; the people on an account; their ID documents and proofs of address (the bytes are
-- encrypted in <data dir>/documents/, see monitor/store/documents.py); prisoners added as contacts;
-- call requests to staff-booked prisons; the calls families booked; governors' extra calls.
-- Staff get a role. Times are UTC epoch seconds (REAL), as in 001.

-- Families add a prisoner by name, prison number and date of birth (YYYY-MM-DD); NULL: not yet known,
-- so no family can add that prisoner.
ALTER TABLE prisoners ADD COLUMN date_of_birth TEXT;

-- 'governor': may also grant extra calls and change the prison's call settings.
ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'staff' CHECK (role IN ('staff', 'governor'));

-- One row per prison name used in prisoners.prison, bookings.prison and staff.prison, made with the
-- defaults of monitor/store/prisons.py the first time it is needed.
CREATE TABLE prisons (
    name                 TEXT PRIMARY KEY,
    time_zone            TEXT NOT NULL,          -- IANA name, e.g. Europe/London
    mode                 TEXT NOT NULL CHECK (mode IN ('self_select', 'staff_booked')),
    concurrent_calls     INTEGER NOT NULL CHECK (concurrent_calls >= 1),
    timetable            TEXT NOT NULL,          -- JSON {"mon": ["09:00", ...], ...} (policies.slots)
    cancel_cutoff_hours  REAL NOT NULL CHECK (cancel_cutoff_hours >= 1),
    updated_at           REAL NOT NULL
);

CREATE TABLE family_accounts (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE,    -- lower case
    password_hash       TEXT NOT NULL,           -- as staff: scrypt$N$r$p$salt$hash
    status              TEXT NOT NULL DEFAULT 'unverified'
                        CHECK (status IN ('unverified', 'pending', 'verified', 'refused')),
    refusal_reason      TEXT,
    id_shows_address    INTEGER NOT NULL DEFAULT 0 CHECK (id_shows_address IN (0, 1)),
    email_confirmed_at  REAL,
    submitted_at        REAL,                    -- everything needed arrived: the 24 h clock starts
    decided_by          TEXT,                    -- staff user name
    decided_at          REAL,
    created_at          REAL NOT NULL
);

-- E-mail confirmation links and sessions: only the SHA-256 of the token is kept.
CREATE TABLE family_confirmations (
    token_sha256  TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES family_accounts(id),
    expires_at    REAL NOT NULL,
    used_at       REAL
);

CREATE TABLE family_sessions (
    token_sha256  TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES family_accounts(id),
    created_at    REAL NOT NULL,
    expires_at    REAL NOT NULL,
    revoked_at    REAL
);

-- Everyone on an account's calls, the account holder (holder = 1) first among them.
CREATE TABLE family_people (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES family_accounts(id),
    holder         INTEGER NOT NULL CHECK (holder IN (0, 1)),
    name           TEXT NOT NULL,
    date_of_birth  TEXT NOT NULL,                -- YYYY-MM-DD
    address        TEXT NOT NULL,
    visitor_id     TEXT UNIQUE REFERENCES visitors(id),  -- once their face photo is enrolled
    status         TEXT NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'approved', 'refused')),
    reason         TEXT,                         -- why staff refused them
    decided_by     TEXT,
    decided_at     REAL,
    created_at     REAL NOT NULL
);
CREATE UNIQUE INDEX family_people_one_holder ON family_people (account_id) WHERE holder = 1;
CREATE INDEX family_people_account ON family_people (account_id);

CREATE TABLE family_documents (
    id              TEXT PRIMARY KEY,            -- also the encrypted file's name
    account_id      TEXT NOT NULL REFERENCES family_accounts(id),
    person_id       TEXT NOT NULL REFERENCES family_people(id),
    kind            TEXT NOT NULL CHECK (kind IN ('id_document', 'proof_of_address')),
    sha256          TEXT NOT NULL,               -- of the document's bytes (before encryption)
    content_type    TEXT NOT NULL,               -- sniffed from the bytes
    size            INTEGER NOT NULL,
    face_embedding  BLOB,                        -- the face on an ID document (float64 little-endian)
    uploaded_at     REAL NOT NULL,
    replaced_at     REAL,                        -- a newer document of the same kind arrived
    delete_after    REAL,                        -- set once the account or the person is decided
    deleted_at      REAL
);
CREATE INDEX family_documents_person ON family_documents (person_id, kind);
CREATE INDEX family_documents_expiry ON family_documents (delete_after) WHERE deleted_at IS NULL;

CREATE TABLE family_contacts (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES family_accounts(id),
    prisoner_id  TEXT NOT NULL REFERENCES prisoners(id),
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'refused')),
    reason       TEXT,
    decided_by   TEXT,
    decided_at   REAL,
    created_at   REAL NOT NULL,
    UNIQUE (account_id, prisoner_id)
);

-- Prisons in staff-booked mode: the family asks, staff book a time.
CREATE TABLE call_requests (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES family_accounts(id),
    contact_id   TEXT NOT NULL REFERENCES family_contacts(id),
    people       TEXT NOT NULL,                  -- JSON list of family_people ids, the main caller first
    preferred    TEXT NOT NULL,                  -- JSON list of ISO times in the prison's time zone
    note         TEXT NOT NULL DEFAULT '',
    status       TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'booked', 'declined', 'withdrawn')),
    reason       TEXT,
    call_id      TEXT,                           -- the call staff booked for it
    decided_by   TEXT,
    decided_at   REAL,
    created_at   REAL NOT NULL
);

-- The calls a family booked (or staff booked for its request). The call itself is an ordinary row of
-- bookings; a cancelled call's bookings row is deleted, this row keeps that it was cancelled.
CREATE TABLE family_bookings (
    call_id       TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES family_accounts(id),
    contact_id    TEXT NOT NULL REFERENCES family_contacts(id),
    starts_at     REAL NOT NULL,
    ends_at       REAL NOT NULL,
    request_id    TEXT REFERENCES call_requests(id),
    created_at    REAL NOT NULL,
    cancelled_at  REAL,
    cancelled_by  TEXT                           -- 'family' or 'staff:<user name>'
);
CREATE INDEX family_bookings_account ON family_bookings (account_id, starts_at);

-- Extra calls a governor allowed a prisoner for one month, beyond the monthly allowance.
CREATE TABLE allowance_grants (
    id           INTEGER PRIMARY KEY,
    prisoner_id  TEXT NOT NULL REFERENCES prisoners(id),
    month        TEXT NOT NULL,                  -- YYYY-MM in the prison's time zone
    extra_calls  INTEGER NOT NULL CHECK (extra_calls >= 1),
    reason       TEXT NOT NULL,
    governor     TEXT NOT NULL,                  -- staff user name
    at           REAL NOT NULL
);
CREATE INDEX allowance_grants_month ON allowance_grants (prisoner_id, month);

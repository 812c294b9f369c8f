-- 002: a keyed audit chain (HMAC with a key kept outside the database, see monitor/store/audit_chain.py)
-- and login throttling per (account, client address).

-- One row: the chain's identity and its key's fingerprint. key_id is NULL until the chain is keyed
-- (the first record written after this migration keys it: every record's hash is recomputed with
-- the key, after the plain SHA-256 chain was verified). Once keyed, the row is fixed.
CREATE TABLE audit_chain (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    chain_id       TEXT,                 -- random; names the chain in its checkpoint file
    key_id         TEXT,                 -- fingerprint of the HMAC key (never the key)
    keyed_at       REAL,
    keyed_records  INTEGER,              -- records that existed when the chain was keyed
    plain_head     TEXT                  -- their plain SHA-256 head then (to compare with older copies)
);
INSERT INTO audit_chain (id) VALUES (1);

-- engine: sqlite
CREATE TRIGGER audit_chain_fixed BEFORE UPDATE ON audit_chain
WHEN OLD.key_id IS NOT NULL OR NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'the audit chain is keyed: its settings are fixed');
END;

CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
BEGIN
    SELECT RAISE(ABORT, 'the audit chain settings cannot be deleted');
END;

-- Before the chain is keyed, only the hashes of existing records may be rewritten (keying them);
-- nothing else of a record, ever.
DROP TRIGGER IF EXISTS audit_no_update;  -- IF EXISTS: a tampered database may have lost it
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN (SELECT key_id FROM audit_chain WHERE id = 1) IS NOT NULL
    OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.prison IS NOT OLD.prison
    OR NEW.call_id IS NOT OLD.call_id OR NEW.kind IS NOT OLD.kind OR NEW.actor IS NOT OLD.actor
    OR NEW.data IS NOT OLD.data OR NEW.evidence IS NOT OLD.evidence
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- engine: postgresql
CREATE FUNCTION audit_chain_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'the audit chain settings cannot be deleted'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.key_id IS NOT NULL OR NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'the audit chain is keyed: its settings are fixed'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_chain_fixed BEFORE UPDATE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_fixed();
CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_fixed();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_fixed();

-- Before the chain is keyed, only the hashes of existing records may be rewritten; nothing else.
CREATE FUNCTION audit_rehash_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT key_id FROM audit_chain WHERE id = 1) IS NOT NULL
        OR NEW.id IS DISTINCT FROM OLD.id OR NEW.at IS DISTINCT FROM OLD.at
        OR NEW.prison IS DISTINCT FROM OLD.prison OR NEW.call_id IS DISTINCT FROM OLD.call_id
        OR NEW.kind IS DISTINCT FROM OLD.kind OR NEW.actor IS DISTINCT FROM OLD.actor
        OR NEW.data IS DISTINCT FROM OLD.data OR NEW.evidence IS DISTINCT FROM OLD.evidence THEN
        RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS audit_no_update ON audit;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_rehash_only();

-- engine: all

-- A sign-in refused by the back-off (not counted as a failure: waiting it out is enough).
ALTER TABLE login_attempts ADD COLUMN limited INTEGER NOT NULL DEFAULT 0 CHECK (limited IN (0, 1));
CREATE INDEX login_attempts_pair ON login_attempts (username, address, at);

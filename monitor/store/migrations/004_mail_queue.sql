-- 004: the mail queue. Every message to a family is a row here before anything tries to send it,
-- so a restart loses none; monitor/store/mail_queue.py is the only code that reads or writes it.
-- The body (text, html) holds secrets (confirmation and join links): it is emptied once the message
-- is delivered, and kept while it waits or after it failed (so it can be sent again).

CREATE TABLE mail_queue (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,           -- address_confirmation, call_booked, ...
    recipient        TEXT NOT NULL,           -- one address (addr-spec)
    subject          TEXT NOT NULL,
    text             TEXT NOT NULL,           -- the plain-text part ('' once delivered)
    html             TEXT NOT NULL,           -- the HTML part ('' once delivered)
    prison           TEXT NOT NULL,           -- whose staff see a failure
    call_id          TEXT,                    -- the call it is about, if any
    message_token    TEXT NOT NULL UNIQUE,    -- the Message-ID's left part: the same on every attempt
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed', 'withdrawn')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,           -- not before (a reminder waits for its time)
    not_after        REAL,                    -- too late to send from then on (a reminder: its call's start)
    last_error       TEXT,
    created_at       REAL NOT NULL,
    done_at          REAL                     -- sent, failed or withdrawn
);
CREATE INDEX mail_queue_due ON mail_queue (status, next_attempt_at);
CREATE INDEX mail_queue_call ON mail_queue (call_id, kind);

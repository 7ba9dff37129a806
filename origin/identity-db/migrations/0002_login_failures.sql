-- Failed sign-ins, per e-mail address (an account or not, so a lock says
-- nothing about whether an account exists). Keyed by the SHA-256 of the
-- normalised address; a successful sign-in deletes the row.
CREATE TABLE login_failures (
    email_key    BLOB    PRIMARY KEY CHECK (length(email_key) = 32),
    failures     INTEGER NOT NULL CHECK (failures > 0),
    -- Failures older than the window no longer count.
    window_start INTEGER NOT NULL,
    -- No password is checked before this time (Unix seconds; 0 = open).
    locked_until INTEGER NOT NULL
) WITHOUT ROWID;

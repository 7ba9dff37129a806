-- A sign-up is one statement too: the new account carries its first
-- session, and this trigger opens that session (whose own triggers file
-- its first refresh token) and clears the columns. The account's id is
-- the statement's RETURNING, so the PoP signs the tokens as soon as the
-- one round trip returns.
ALTER TABLE accounts ADD COLUMN first_session_id TEXT;
ALTER TABLE accounts ADD COLUMN first_session_expires_at INTEGER;
ALTER TABLE accounts ADD COLUMN first_refresh_hash BLOB
    CHECK (first_refresh_hash IS NULL OR length(first_refresh_hash) = 32);
CREATE TRIGGER accounts_first_session AFTER INSERT ON accounts
WHEN NEW.first_session_id IS NOT NULL
BEGIN
    INSERT INTO sessions (id, account_id, created_at, expires_at, first_refresh_hash)
    VALUES (NEW.first_session_id, NEW.id, NEW.created_at,
            NEW.first_session_expires_at, NEW.first_refresh_hash);
    UPDATE accounts
    SET first_session_id = NULL, first_session_expires_at = NULL, first_refresh_hash = NULL
    WHERE id = NEW.id;
END;

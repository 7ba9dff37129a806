-- A PoP far from the primary pays several round trips per write, so a
-- sign-in and a refresh each take one statement; these triggers do the
-- rest inside it.

-- A new session carries its first refresh token's digest; the trigger
-- files it in refresh_tokens and clears the column.
ALTER TABLE sessions ADD COLUMN first_refresh_hash BLOB
    CHECK (first_refresh_hash IS NULL OR length(first_refresh_hash) = 32);
CREATE TRIGGER sessions_first_refresh AFTER INSERT ON sessions
WHEN NEW.first_refresh_hash IS NOT NULL
BEGIN
    INSERT INTO refresh_tokens (token_hash, session_id, issued_at, expires_at)
    VALUES (NEW.first_refresh_hash, NEW.id, NEW.created_at, NEW.expires_at);
    UPDATE sessions SET first_refresh_hash = NULL WHERE id = NEW.id;
END;

-- A rotation inserts the new token naming the one it replaces; the
-- trigger marks that one rotated. The insert selects the parent only
-- while it is unrotated, so of two rotations of one token only the first
-- inserts anything.
ALTER TABLE refresh_tokens ADD COLUMN parent_hash BLOB;
CREATE TRIGGER refresh_tokens_rotate AFTER INSERT ON refresh_tokens
WHEN NEW.parent_hash IS NOT NULL
BEGIN
    UPDATE refresh_tokens SET rotated_at = NEW.issued_at WHERE token_hash = NEW.parent_hash;
END;

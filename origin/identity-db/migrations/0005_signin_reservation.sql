-- A sign-in reserves its attempt in `login_failures` before any password
-- is checked (auth-core's `throttle`), so concurrent guesses cannot all be
-- checked while a lock is being written. A successful sign-in gives the
-- attempt back in the statement that creates its session: the session
-- names the address's key, and this trigger deletes the failures.
ALTER TABLE sessions ADD COLUMN signin_key BLOB
    CHECK (signin_key IS NULL OR length(signin_key) = 32);
CREATE TRIGGER sessions_signin_clears_failures AFTER INSERT ON sessions
WHEN NEW.signin_key IS NOT NULL
BEGIN
    DELETE FROM login_failures WHERE email_key = NEW.signin_key;
    UPDATE sessions SET signin_key = NULL WHERE id = NEW.id;
END;

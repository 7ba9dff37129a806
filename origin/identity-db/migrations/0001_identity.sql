-- Identity v1: accounts and sessions. Replicated to PoPs (apart from the
-- catalog, which stays public data) so every PoP can sign people in and
-- check a token's session for revocation without asking the origin.
-- Passwords are Argon2id PHC strings; refresh tokens are kept only as
-- SHA-256 digests.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY,
    -- Normalised by the auth component: trimmed and lower-cased.
    email         TEXT    NOT NULL UNIQUE CHECK (email = lower(trim(email)) AND email LIKE '%_@_%'),
    password_hash TEXT    NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    kind          TEXT    NOT NULL CHECK (kind IN ('shopper', 'vendor')),
    -- The catalog vendor a vendor account owns (the catalog is another
    -- database, so this is checked by the writer, not a foreign key).
    vendor_id     INTEGER UNIQUE,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    CHECK ((kind = 'vendor') = (vendor_id IS NOT NULL))
);

-- Roles beyond the account kind. `admin` is only ever granted by
-- `cargo xtask seed`, never through the API.
CREATE TABLE account_roles (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role       TEXT    NOT NULL CHECK (role IN ('admin')),
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, role)
) WITHOUT ROWID;

-- A sign-in. Its id is the `sid` of every token issued for it.
CREATE TABLE sessions (
    id             TEXT    PRIMARY KEY CHECK (length(id) >= 22),
    account_id     INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at     INTEGER NOT NULL,
    -- Absolute lifetime: refreshing never extends a session past it.
    expires_at     INTEGER NOT NULL CHECK (expires_at > created_at),
    revoked_at     INTEGER,
    revoked_reason TEXT    CHECK (revoked_reason IN ('logout', 'refresh_reuse', 'admin')),
    CHECK ((revoked_at IS NULL) = (revoked_reason IS NULL))
) WITHOUT ROWID;
CREATE INDEX sessions_by_account ON sessions (account_id);

-- Refresh tokens rotate: each use marks the token rotated and issues a
-- new one. Presenting a rotated token again means it was stolen, and the
-- whole session is revoked.
CREATE TABLE refresh_tokens (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    session_id TEXT    NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL CHECK (expires_at > issued_at),
    rotated_at INTEGER
) WITHOUT ROWID;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- What every PoP looks up on every authenticated request: a small table
-- of revoked sessions. A row may be purged once every access token of
-- the session has expired (`purge_after`), which keeps it small.
CREATE TABLE revocations (
    session_id  TEXT    PRIMARY KEY,
    revoked_at  INTEGER NOT NULL,
    purge_after INTEGER NOT NULL
) WITHOUT ROWID;

-- Access tokens live minutes; an hour past the revocation covers the
-- longest lifetime plus clock leeway.
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON sessions
WHEN NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL
BEGIN
    INSERT OR IGNORE INTO revocations (session_id, revoked_at, purge_after)
    VALUES (NEW.id, NEW.revoked_at, NEW.revoked_at + 3600);
END;

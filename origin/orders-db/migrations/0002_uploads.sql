-- Uploads v2: vendors' uploads to the object store, kept beside orders
-- because they are the origin's own business too (never replicated): the
-- signed URL's object, whose it is, what it may be, and what became of it.
-- A product's media, once processed, live in the catalog and replicate.

CREATE TABLE uploads (
    id           INTEGER PRIMARY KEY,
    vendor_id    INTEGER NOT NULL,
    -- `uploads/{vendor}/{random}.{ext}`: named by nothing the vendor chose.
    object_key   TEXT    NOT NULL UNIQUE,
    -- The vendor's own name for it, shown back to them only.
    file_name    TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         INTEGER NOT NULL CHECK (size > 0),
    -- signed: the URL is out; processing: attached and being turned into
    -- media; ready: in the product's media; failed: see `error`, nothing
    -- published; expired: never attached, its object removed.
    status       TEXT    NOT NULL DEFAULT 'signed'
                 CHECK (status IN ('signed', 'processing', 'ready', 'failed', 'expired')),
    product_id   INTEGER,
    error        TEXT,
    -- The variants made, as JSON, once ready.
    media        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX uploads_by_vendor ON uploads (vendor_id, id DESC);
CREATE INDEX uploads_to_process ON uploads (next_attempt_at) WHERE status = 'processing';
CREATE INDEX uploads_to_expire ON uploads (expires_at) WHERE status = 'signed';

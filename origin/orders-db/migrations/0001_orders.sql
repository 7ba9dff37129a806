-- Orders v1: the origin's own database. It never leaves the origin (it is
-- not replicated): orders, their saga state and history, idempotency keys,
-- the outbox and what consumed it.

-- One order and its saga. `saga` is the state machine's JSON; `status` is
-- its name for people and queries; `final` is 1 once nothing more will
-- happen to it.
CREATE TABLE orders (
    id              TEXT    PRIMARY KEY,
    account_id      INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    final           INTEGER NOT NULL DEFAULT 0 CHECK (final IN (0, 1)),
    saga            TEXT    NOT NULL,
    currency        TEXT    NOT NULL CHECK (length(currency) = 3),
    total_minor     INTEGER NOT NULL CHECK (total_minor > 0),
    shipping        TEXT    NOT NULL,
    payment_method  TEXT    NOT NULL,
    -- The provider's PaymentIntent, once known.
    payment_intent  TEXT,
    -- Why it ended, for a failed order.
    reason          TEXT,
    -- Unix ms before which the saga's next step must not run (backoff).
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX orders_by_account ON orders (account_id, created_at DESC, id DESC);
CREATE INDEX orders_in_flight ON orders (next_attempt_at) WHERE final = 0;

-- Lines as priced at the primary when the order was placed.
CREATE TABLE order_lines (
    order_id         TEXT    NOT NULL REFERENCES orders(id),
    product_id       INTEGER NOT NULL,
    vendor_id        INTEGER NOT NULL,
    title            TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_minor INTEGER NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, product_id)
) WITHOUT ROWID;

-- Every move of every order, why it happened, in order. Append-only.
CREATE TABLE order_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT    NOT NULL REFERENCES orders(id),
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX order_events_by_order ON order_events (order_id, seq);
CREATE TRIGGER order_events_no_update BEFORE UPDATE ON order_events BEGIN
    SELECT RAISE(ABORT, 'order_events is append-only');
END;
CREATE TRIGGER order_events_no_delete BEFORE DELETE ON order_events BEGIN
    SELECT RAISE(ABORT, 'order_events is append-only');
END;

-- Checkout idempotency keys, per account. `digest` is the request body's
-- SHA-256; `status`/`response` the first answer, once there is one.
-- Kept at least 24 h.
CREATE TABLE idempotency (
    account_id INTEGER NOT NULL,
    key        TEXT    NOT NULL,
    digest     BLOB    NOT NULL,
    order_id   TEXT    NOT NULL REFERENCES orders(id),
    status     INTEGER,
    response   TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (account_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_by_age ON idempotency (created_at);

-- Events to publish, written in the same transaction as the change they
-- describe; `published_at` is set once the consumer has them.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    order_id     TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- The consumer: a vendor notification log. The event id is the key, so a
-- delivery that comes twice is recorded once.
CREATE TABLE vendor_notifications (
    event_id    TEXT    NOT NULL,
    vendor_id   INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    order_id    TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, vendor_id)
) WITHOUT ROWID;

-- Payment provider webhooks seen, by event id: a redelivery is a no-op.
CREATE TABLE payment_webhooks (
    event_id       TEXT    PRIMARY KEY,
    kind           TEXT    NOT NULL,
    payment_intent TEXT,
    created        INTEGER NOT NULL,
    received_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- A per-database secret: stock holds in the (replicated) catalog are named
-- by a keyed hash of the order id, so PoPs never learn order ids.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO settings (name, value) VALUES ('hold_key', lower(hex(randomblob(32))));

-- Catalog v2: stock held for orders at the primary. Reserving stock and
-- recording the hold are one transaction, so a saga retried after a crash
-- finds its hold instead of taking the stock twice. The id is a keyed hash
-- of the order id (the key stays in the origin's orders database): this
-- table replicates with the catalog, and PoPs must not learn order ids.
CREATE TABLE stock_holds (
    id         TEXT    PRIMARY KEY,
    -- JSON [[product_id, quantity], ...]
    lines      TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('held', 'released', 'sold')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Catalog schema v1: the public data every PoP replicates.
CREATE TABLE vendors (
    id          INTEGER PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    country     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE categories (
    id        INTEGER PRIMARY KEY,
    slug      TEXT    NOT NULL UNIQUE,
    name      TEXT    NOT NULL,
    parent_id INTEGER REFERENCES categories(id)
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    slug        TEXT    NOT NULL UNIQUE,
    vendor_id   INTEGER NOT NULL REFERENCES vendors(id),
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL,
    price_minor INTEGER NOT NULL CHECK (price_minor >= 0),
    currency    TEXT    NOT NULL CHECK (length(currency) = 3),
    stock       INTEGER NOT NULL CHECK (stock >= 0),
    media       TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

-- Keyset pagination needs an index whose order is the sort order plus id.
CREATE INDEX products_by_vendor ON products (vendor_id, created_at DESC, id DESC);
CREATE INDEX products_by_price  ON products (price_minor, id);
CREATE INDEX products_by_newest ON products (created_at DESC, id DESC);

CREATE TABLE product_categories (
    category_id INTEGER NOT NULL REFERENCES categories(id),
    product_id  INTEGER NOT NULL REFERENCES products(id) ON DELETE CASCADE,
    PRIMARY KEY (category_id, product_id)
) WITHOUT ROWID;
CREATE INDEX product_categories_by_product ON product_categories (product_id, category_id);

-- Full-text index over title and description, kept in step by triggers.
CREATE VIRTUAL TABLE products_fts USING fts5 (
    title, description,
    content = 'products', content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER products_fts_insert AFTER INSERT ON products BEGIN
    INSERT INTO products_fts (rowid, title, description) VALUES (new.id, new.title, new.description);
END;
CREATE TRIGGER products_fts_delete AFTER DELETE ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, title, description)
    VALUES ('delete', old.id, old.title, old.description);
END;
CREATE TRIGGER products_fts_update AFTER UPDATE OF title, description ON products BEGIN
    INSERT INTO products_fts (products_fts, rowid, title, description)
    VALUES ('delete', old.id, old.title, old.description);
    INSERT INTO products_fts (rowid, title, description) VALUES (new.id, new.title, new.description);
END;

-- The change log that cache invalidation rides on: every write appends the
-- cache tags it affects, and the log replicates to every PoP with the data.
CREATE TABLE changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tag TEXT    NOT NULL,
    at  INTEGER NOT NULL DEFAULT (unixepoch())
);
CREATE INDEX changes_by_tag ON changes (tag, seq);

CREATE TRIGGER products_changes_insert AFTER INSERT ON products BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || new.id), ('vendor:' || new.vendor_id), ('catalog');
END;
CREATE TRIGGER products_changes_update AFTER UPDATE ON products BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || new.id), ('vendor:' || new.vendor_id), ('catalog');
    INSERT INTO changes (tag) SELECT 'vendor:' || old.vendor_id WHERE old.vendor_id <> new.vendor_id;
END;
CREATE TRIGGER products_changes_delete AFTER DELETE ON products BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || old.id), ('vendor:' || old.vendor_id), ('catalog');
END;
CREATE TRIGGER product_categories_changes_insert AFTER INSERT ON product_categories BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || new.product_id), ('category:' || new.category_id);
END;
CREATE TRIGGER product_categories_changes_delete AFTER DELETE ON product_categories BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || old.product_id), ('category:' || old.category_id);
END;
CREATE TRIGGER vendors_changes_update AFTER UPDATE ON vendors BEGIN
    INSERT INTO changes (tag) VALUES ('vendor:' || new.id);
END;
CREATE TRIGGER categories_changes_insert AFTER INSERT ON categories BEGIN
    INSERT INTO changes (tag) VALUES ('category:' || new.id), ('categories');
END;
CREATE TRIGGER categories_changes_update AFTER UPDATE ON categories BEGIN
    INSERT INTO changes (tag) VALUES ('category:' || new.id), ('categories');
END;

-- Catalog v3: a product is a draft until its vendor publishes it. Drafts
-- replicate with the rest, so every shopper-facing read names
-- status = 'published' (catalog-core, and checkout's pricing at the
-- origin); only the vendor API at the origin shows a vendor its drafts.
-- Products that existed before are published.
ALTER TABLE products ADD COLUMN status TEXT NOT NULL DEFAULT 'published'
    CHECK (status IN ('draft', 'published'));

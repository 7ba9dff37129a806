-- A refresh whose answer was lost (the connection to the client, or the
-- PoP's to the primary, broke after the rotation committed) is retried
-- with the same token. Within a short grace the primary then rotates the
-- token's child instead, which the client never received. Finding that
-- child needs its parent; `by_retry` marks a token made that way, whose
-- parent may not be retried in turn (else two holders of one token could
-- keep rotating each other's tokens without either use counting as a
-- reuse).
CREATE INDEX refresh_tokens_by_parent ON refresh_tokens (parent_hash)
    WHERE parent_hash IS NOT NULL;
ALTER TABLE refresh_tokens ADD COLUMN by_retry INTEGER NOT NULL DEFAULT 0
    CHECK (by_retry IN (0, 1));

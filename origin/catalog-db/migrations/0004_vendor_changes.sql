-- Catalog v4: a product's update names its vendor in the change log only
-- when the vendor's own entry changes. That entry counts the vendor's
-- published products, so only a move to another vendor or a change of
-- status alters it. Every product page carries its vendor's tag (a
-- vendor's rename reaches them through `vendors_changes_update`), so the
-- v1 trigger, which named the vendor on every update, made each sale
-- purge every page of that vendor at every PoP, and wrote one more
-- change-log index page per order.
DROP TRIGGER products_changes_update;
CREATE TRIGGER products_changes_update AFTER UPDATE ON products BEGIN
    INSERT INTO changes (tag) VALUES ('product:' || new.id), ('catalog');
    INSERT INTO changes (tag) SELECT 'vendor:' || new.vendor_id
        WHERE old.vendor_id <> new.vendor_id OR old.status IS NOT new.status;
    INSERT INTO changes (tag) SELECT 'vendor:' || old.vendor_id
        WHERE old.vendor_id <> new.vendor_id;
END;

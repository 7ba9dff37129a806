-- Orders v3: a lease per order, so more than one origin process can drive
-- sagas on the same database. The process that holds an order's lease
-- (`lease_owner`, until `lease_until`, Unix ms) is the only one that
-- moves it; it takes the lease when it creates or resumes the order and
-- renews it in the same statement as every step it records. A process
-- that dies stops renewing, and once the lease runs out another takes
-- the order over.
ALTER TABLE orders ADD COLUMN lease_owner TEXT;
ALTER TABLE orders ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;

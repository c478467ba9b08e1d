-- Each key's oldest pending deliveries, one seek per key (store/forwarding_sql.py,
-- `pending_by_key`): a key with a long backlog must not hold the others out of the
-- forwarder's window. The same index as SQLite's m015_forwarding_pending_by_key.
CREATE INDEX fwd_items_pending_key ON fwd_items (destination, key, position)
    WHERE state = 'pending';

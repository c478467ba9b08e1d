-- Refused deliveries by time, for `rejections` and `rejection_counts` (the overview's
-- refused deliveries page). Partial, so stored rows never pay for it; `reason` is
-- included so counting a range reads the index alone. Same as SQLite's m011.
CREATE INDEX deliveries_rejected_at ON deliveries (received_at, seq) INCLUDE (reason)
    WHERE outcome = 'rejected';

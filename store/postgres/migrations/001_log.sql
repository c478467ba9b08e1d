-- The log, its head, the delivery journal and the counters the append function keeps.
-- Applied in the schema first on the connection's search_path.

-- One row per event. `position` is assigned by ikledger_append under the head's row
-- lock: gap-free and in commit order. `chain` precedes `body` so reading the chain
-- never detoasts a body.
CREATE TABLE events (
    position    bigint PRIMARY KEY,
    id          text   NOT NULL UNIQUE,
    type        text   NOT NULL,
    created_at  text   NOT NULL,
    received_at text   NOT NULL,
    scheme      text   NOT NULL,
    chain       bytea  NOT NULL CHECK (octet_length(chain) = 32),
    body        bytea  NOT NULL
);

-- The newest position and chain value: one row, locked FOR UPDATE by every append.
CREATE TABLE log_head (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    position bigint  NOT NULL,
    chain    bytea   NOT NULL
);
INSERT INTO log_head (position, chain) VALUES (0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- One row per POST and what became of it; `body` only for conflicting redeliveries.
CREATE TABLE deliveries (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at text   NOT NULL,
    outcome     text   NOT NULL,
    status      integer,
    reason      text,
    event_id    text,
    position    bigint,
    body_sha256 bytea,
    size        integer,
    remote_addr text,
    scheme      text,
    body        bytea
);
CREATE INDEX deliveries_position ON deliveries (position) WHERE position IS NOT NULL;
CREATE INDEX deliveries_event_id ON deliveries (event_id) WHERE position IS NULL;
CREATE INDEX deliveries_rejected ON deliveries (seq) WHERE outcome = 'rejected';

-- Counters kept by ikledger_append, so /metrics never counts a table.
CREATE TABLE type_counts (
    type   text   PRIMARY KEY,
    events bigint NOT NULL
);
CREATE TABLE delivery_counts (
    outcome    text   PRIMARY KEY,
    deliveries bigint NOT NULL
);

-- A real committed write for check_writable (a read-only server fails it).
CREATE TABLE write_probe (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    checked_at text NOT NULL
);

-- The database itself refuses to change the past, whoever asks.
CREATE FUNCTION ikledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_refuse_change();

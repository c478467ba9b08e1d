-- Forwarding's state beside the log (store/forwarding.py): destinations, the events
-- queued for each, the attempts journal, replay jobs and one lease per destination.
-- Mutable and outside the chain. The same tables as SQLite's m009_forwarding; times
-- are epoch milliseconds, flags 0/1, so both backends share their statements
-- (store/forwarding_sql.py).

CREATE TABLE fwd_destinations (
    name            text PRIMARY KEY,
    url             text NOT NULL,
    secret          text,
    types           text NOT NULL,              -- JSON array of shell patterns; [] is every type
    timeout_ms      bigint NOT NULL,
    max_in_flight   integer NOT NULL,
    rate            double precision,           -- attempts per second; NULL is unlimited
    schedule        text NOT NULL,              -- retry delays in ms, comma-separated
    unordered       integer NOT NULL,
    paused          integer NOT NULL,
    pause_reason    text,
    created_ms      bigint NOT NULL,
    cursor          bigint NOT NULL,            -- last log position turned into deliveries
    last_success_ms bigint,
    last_failure_ms bigint,
    last_failure    text
);

CREATE TABLE fwd_items (
    destination text    NOT NULL,
    position    bigint  NOT NULL,
    event_id    text    NOT NULL,
    key         text    NOT NULL,               -- the ordering key (asset, file, folder or event id)
    state       text    NOT NULL,               -- pending, delivered, failed
    attempts    integer NOT NULL,
    next_ms     bigint  NOT NULL,
    replay_job  bigint,
    PRIMARY KEY (destination, position)
);
CREATE INDEX fwd_items_state ON fwd_items (destination, state, position);

CREATE TABLE fwd_attempts (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination text    NOT NULL,
    position    bigint  NOT NULL,
    event_id    text    NOT NULL,
    number      integer NOT NULL,
    kind        text    NOT NULL,               -- scheduled, replay
    replay_job  bigint,
    started_ms  bigint  NOT NULL,
    duration_ms bigint  NOT NULL,
    status      integer,
    error       text,
    response    bytea   NOT NULL,
    next_ms     bigint
);
CREATE INDEX fwd_attempts_event ON fwd_attempts (event_id);
CREATE INDEX fwd_attempts_item ON fwd_attempts (destination, position);

CREATE TABLE fwd_replays (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    destination text   NOT NULL,
    created_ms  bigint NOT NULL,
    selection   text   NOT NULL,
    rate        double precision,
    queued      bigint NOT NULL
);

CREATE TABLE fwd_leases (
    destination text   PRIMARY KEY,
    holder      text   NOT NULL,
    expires_ms  bigint NOT NULL
);

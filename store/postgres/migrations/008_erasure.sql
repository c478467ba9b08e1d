-- Retention and erasure: a body may go, and only with its recorded erasure. One
-- `erasures` row per prune or erase (when, how, why), one `erased_bodies` row per body
-- removed (its SHA-256 and size, which the chain, the tree and the proofs still need).
-- Both append-only. Formats: store/contract.py (erase_bodies) and docs/verifiable-history.md.

CREATE TABLE erasures (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL CHECK (kind IN ('prune', 'erase')),
    reason    text NOT NULL
);

CREATE TABLE erased_bodies (
    position    bigint PRIMARY KEY,
    erasure     bigint NOT NULL REFERENCES erasures (seq),
    body_sha256 bytea  NOT NULL CHECK (octet_length(body_sha256) = 32),
    size        bigint NOT NULL
);

CREATE TRIGGER erasures_no_update_or_delete BEFORE UPDATE OR DELETE ON erasures
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON erasures
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER erased_bodies_no_update_or_delete BEFORE UPDATE OR DELETE ON erased_bodies
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER erased_bodies_no_truncate BEFORE TRUNCATE ON erased_bodies
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_refuse_change();

-- An event may change in one way only: its body emptied once a row of erased_bodies
-- records that position with this very body's SHA-256 and size. Anything else (and
-- every DELETE) is refused, whoever asks.
CREATE FUNCTION ikledger_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.body = ''::bytea
        AND (NEW.position, NEW.id, NEW.type, NEW.created_at, NEW.received_at, NEW.scheme,
             NEW.chain)
            IS NOT DISTINCT FROM
            (OLD.position, OLD.id, OLD.type, OLD.created_at, OLD.received_at, OLD.scheme,
             OLD.chain)
        AND EXISTS (
            SELECT 1 FROM erased_bodies AS b
            WHERE b.position = OLD.position
              AND b.body_sha256 = sha256(OLD.body)
              AND b.size = octet_length(OLD.body))
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
DROP TRIGGER events_no_update_or_delete ON events;
CREATE TRIGGER events_no_update_or_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_event_change();

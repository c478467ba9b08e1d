-- The Merkle tree over the log (RFC 6962), grown where positions are assigned, and the
-- signed checkpoints. Formats: store/tlog/ and docs/verifiable-history.md.

-- Every complete subtree's hash, at Go sumdb/tlog's stored-hash index
-- (store/tlog/tree.py: stored_hash_index). Append-only, like the events.
CREATE TABLE tree_hashes (
    idx  bigint PRIMARY KEY,
    hash bytea  NOT NULL CHECK (octet_length(hash) = 32)
);

-- Signed tree heads, as the signed note's bytes: append-only.
CREATE TABLE checkpoints (
    seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    added_at timestamptz NOT NULL DEFAULT now(),
    note     bytea NOT NULL
);

CREATE TRIGGER tree_hashes_no_update_or_delete BEFORE UPDATE OR DELETE ON tree_hashes
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER tree_hashes_no_truncate BEFORE TRUNCATE ON tree_hashes
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER checkpoints_no_update_or_delete BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION ikledger_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_refuse_change();

-- Where level `p_level`'s `p_n`-th hash is stored (Go's StoredHashIndex).
CREATE FUNCTION ikledger_stored_hash_index(p_level integer, p_n bigint) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v_n bigint := p_n;
    v_index bigint := 0;
BEGIN
    FOR l IN 1 .. p_level LOOP
        v_n := 2 * v_n + 1;
    END LOOP;
    WHILE v_n > 0 LOOP
        v_index := v_index + v_n;
        v_n := v_n >> 1;
    END LOOP;
    RETURN v_index + p_level;
END
$$;

-- The leaf hash of one event: SHA-256(0x00 ‖ leaf), the leaf being SHA-256(body) ‖
-- received_at in epoch ms (u64 BE) ‖ len16(id) ‖ id ‖ len16(type) ‖ type.
CREATE FUNCTION ikledger_leaf_hash(p_id text, p_type text, p_received_at text, p_body bytea)
RETURNS bytea LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT sha256('\x00'::bytea || sha256(p_body)
        || int8send(floor(extract(epoch FROM p_received_at::timestamptz) * 1000)::bigint)
        || substring(int4send(octet_length(convert_to(p_id, 'UTF8'))) FROM 3)
        || convert_to(p_id, 'UTF8')
        || substring(int4send(octet_length(convert_to(p_type, 'UTF8'))) FROM 3)
        || convert_to(p_type, 'UTF8'))
$$;

-- Append record `p_position - 1` with leaf hash `p_leaf`: its leaf hash and one hash per
-- subtree it completes (Go's StoredHashes), reading the left siblings already stored.
CREATE FUNCTION ikledger_tree_add(p_position bigint, p_leaf bytea) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_n bigint := p_position - 1;
    v_index bigint := ikledger_stored_hash_index(0, p_position - 1);
    v_hash bytea := p_leaf;
    v_left bytea;
    v_level integer := 0;
BEGIN
    INSERT INTO tree_hashes (idx, hash) VALUES (v_index, v_hash);
    -- Each trailing one bit of n completes a subtree with the stored one to its left.
    WHILE (v_n >> v_level) & 1 = 1 LOOP
        SELECT t.hash INTO STRICT v_left FROM tree_hashes AS t
         WHERE t.idx = ikledger_stored_hash_index(v_level, (v_n >> v_level) - 1);
        v_hash := sha256('\x01'::bytea || v_left || v_hash);
        v_level := v_level + 1;
        INSERT INTO tree_hashes (idx, hash) VALUES (v_index + v_level, v_hash);
    END LOOP;
END
$$;

-- Every INSERT into events grows the tree in the same statement, so inside
-- ikledger_append, under the head's row lock, in position order: the tree commits with
-- the events or not at all, whichever receiver appends. (A trigger rather than a new
-- ikledger_append: the append function stays as it is, and no insert escapes it.)
CREATE FUNCTION ikledger_tree_grow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT position, id, type, received_at, body FROM added ORDER BY position LOOP
        PERFORM ikledger_tree_add(r.position, ikledger_leaf_hash(r.id, r.type, r.received_at, r.body));
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_grow_tree AFTER INSERT ON events
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION ikledger_tree_grow();

-- An existing log gets its tree now, in position order.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT position, id, type, received_at, body FROM events ORDER BY position LOOP
        PERFORM ikledger_tree_add(r.position, ikledger_leaf_hash(r.id, r.type, r.received_at, r.body));
    END LOOP;
END
$$;

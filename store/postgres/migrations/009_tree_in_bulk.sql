-- The tree grows once per INSERT, not once per event (issue 20). 005's trigger called
-- ikledger_tree_add for every row: a plpgsql call, a leaf-hash query, one INSERT per
-- stored hash and one SELECT per left sibling, over half of ikledger_append's time.
-- This one computes every leaf hash of the statement in one query, reads the left
-- siblings it needs (the tree's frontier: at most one per level) in one query, chains
-- the subtree hashes in memory and inserts them all in one statement. Same hashes at the
-- same indexes (Go's StoredHashes), so existing logs and their proofs are unchanged.

-- The leaf hash reads a text time as timestamptz, which PostgreSQL counts as STABLE:
-- declared IMMUTABLE, the function could not be inlined into the query below and
-- cost a call per event. Its result does not change (the times carry their offset).
ALTER FUNCTION ikledger_leaf_hash(text, text, text, bytea) STABLE;

CREATE OR REPLACE FUNCTION ikledger_tree_grow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint;
    v_last bigint;
    v_count bigint;
    v_leaves bytea[];
    v_n bigint;                 -- records already in the tree
    v_frontier bigint[] := '{}';
    v_frontier_levels integer[] := '{}';
    v_found bytea[];
    v_pending bytea[] := array_fill(NULL::bytea, ARRAY[64]);  -- per level + 1: a left child
    v_index bigint;             -- where the next record's leaf hash is stored
    v_record bigint;
    v_hash bytea;
    v_level integer;
    v_indexes bigint[] := '{}';
    v_hashes bytea[] := '{}';
BEGIN
    SELECT min(position), max(position), count(*),
           array_agg(ikledger_leaf_hash(id, type, received_at, body) ORDER BY position)
      INTO v_first, v_last, v_count, v_leaves
      FROM added;
    IF v_count = 0 THEN
        RETURN NULL;
    END IF;
    IF v_last - v_first + 1 <> v_count THEN
        RAISE EXCEPTION 'events % .. % are not consecutive: the tree cannot grow', v_first, v_last;
    END IF;
    v_n := v_first - 1;

    -- The left siblings still waiting: level l's newest complete subtree when bit l of n is set.
    v_level := 0;
    WHILE (v_n >> v_level) > 0 LOOP
        IF (v_n >> v_level) & 1 = 1 THEN
            v_frontier := v_frontier || ikledger_stored_hash_index(v_level, (v_n >> v_level) - 1);
            v_frontier_levels := v_frontier_levels || v_level;
        END IF;
        v_level := v_level + 1;
    END LOOP;
    IF cardinality(v_frontier) > 0 THEN
        SELECT array_agg(t.hash ORDER BY f.k) INTO v_found
          FROM unnest(v_frontier) WITH ORDINALITY AS f(idx, k)
          JOIN tree_hashes AS t ON t.idx = f.idx;
        IF coalesce(cardinality(v_found), 0) <> cardinality(v_frontier) THEN
            RAISE EXCEPTION 'the tree of % records is incomplete: it cannot grow', v_n;
        END IF;
        FOR k IN 1 .. cardinality(v_frontier) LOOP
            v_pending[v_frontier_levels[k] + 1] := v_found[k];
        END LOOP;
    END IF;

    -- Record r stores its leaf hash, then one hash per trailing one bit of r (each
    -- completes a subtree with the pending left child of that level), consecutively.
    v_index := ikledger_stored_hash_index(0, v_n);
    FOR k IN 1 .. v_count LOOP
        v_record := v_n + k - 1;
        v_hash := v_leaves[k];
        v_indexes := v_indexes || v_index;
        v_hashes := v_hashes || v_hash;
        v_level := 0;
        WHILE (v_record >> v_level) & 1 = 1 LOOP
            v_hash := sha256('\x01'::bytea || v_pending[v_level + 1] || v_hash);
            v_level := v_level + 1;
            v_indexes := v_indexes || (v_index + v_level);
            v_hashes := v_hashes || v_hash;
        END LOOP;
        v_pending[v_level + 1] := v_hash;
        v_index := v_index + v_level + 1;
    END LOOP;

    INSERT INTO tree_hashes (idx, hash) SELECT * FROM unnest(v_indexes, v_hashes);
    RETURN NULL;
END
$$;

-- ikledger_append: one group of appends (and queued rejections) in one round trip.
--
-- Takes the head row FOR UPDATE: appenders queue on it, so groups commit one after
-- another and positions become visible in order (the lock is released only after the
-- commit is visible). Under REPEATABLE READ or SERIALIZABLE, a head moved since the
-- caller's snapshot makes FOR UPDATE raise a serialization failure: nobody can chain
-- from a stale head. Each item is new (next position, chained exactly as
-- store.contract.chain_link: sha256(previous || sha256(body) || id)), a duplicate (same
-- id and bytes: the original position) or a conflict (same id, other bytes: the
-- original position, the body kept in the journal). Returns one outcome and position
-- per item, in order.
CREATE FUNCTION ikledger_append(
    p_ids text[],
    p_types text[],
    p_created text[],
    p_received text[],      -- NULL items take p_now
    p_schemes text[],
    p_bodies bytea[],
    p_remotes text[],
    p_rejections jsonb,     -- [{received_at, status, reason, event_id, body_sha256 (hex), size, remote_addr, scheme}]
    p_now text,
    p_rejected_keep integer,
    p_probe boolean,
    OUT outcomes text[],
    OUT positions bigint[]
) LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_count integer := coalesce(cardinality(p_ids), 0);
    v_head bigint;
    v_position bigint;
    v_chain bytea;
    v_digests bytea[];
    v_known_positions bigint[];
    v_known_digests bytea[];
    v_firsts integer[];
    v_new integer[] := '{}';
    v_new_chains bytea[] := '{}';
    v_ref_position bigint;
    v_ref_digest bytea;
    v_rejected integer := coalesce(jsonb_array_length(p_rejections), 0);
    v_pruned bigint := 0;
BEGIN
    SELECT h.position, h.chain INTO v_head, v_chain FROM log_head AS h FOR UPDATE;
    v_position := v_head;

    IF p_probe THEN
        INSERT INTO write_probe (checked_at) VALUES (p_now)
        ON CONFLICT (one) DO UPDATE SET checked_at = excluded.checked_at;
    END IF;

    -- Refused deliveries never wait, so those queued are older than this group.
    IF v_rejected > 0 THEN
        INSERT INTO deliveries
            (received_at, outcome, status, reason, event_id, body_sha256, size, remote_addr, scheme)
        SELECT r.received_at, 'rejected', r.status, r.reason, r.event_id,
               decode(r.body_sha256, 'hex'), r.size, r.remote_addr, r.scheme
        FROM jsonb_to_recordset(p_rejections) AS r(
            received_at text, status integer, reason text, event_id text,
            body_sha256 text, size integer, remote_addr text, scheme text);
        DELETE FROM deliveries WHERE outcome = 'rejected' AND seq <= (
            SELECT d.seq FROM deliveries AS d WHERE d.outcome = 'rejected'
            ORDER BY d.seq DESC LIMIT 1 OFFSET p_rejected_keep);
        GET DIAGNOSTICS v_pruned = ROW_COUNT;
        INSERT INTO delivery_counts (outcome, deliveries) VALUES ('rejected', v_rejected - v_pruned)
        ON CONFLICT (outcome) DO UPDATE
            SET deliveries = delivery_counts.deliveries + excluded.deliveries;
    END IF;

    IF v_count = 0 THEN
        RETURN;
    END IF;

    -- Per item: its digest, the event already holding its id, and the first item of
    -- this group with the same id (itself when it is the first).
    SELECT array_agg(sha256(u.body) ORDER BY u.item),
           array_agg(e.position ORDER BY u.item),
           array_agg(sha256(e.body) ORDER BY u.item),
           array_agg(u.first ORDER BY u.item)
      INTO v_digests, v_known_positions, v_known_digests, v_firsts
      FROM (SELECT x.id, x.body, x.item, min(x.item) OVER (PARTITION BY x.id) AS first
              FROM unnest(p_ids, p_bodies) WITH ORDINALITY AS x(id, body, item)) AS u
      LEFT JOIN events AS e ON e.id = u.id;

    outcomes := array_fill(NULL::text, ARRAY[v_count]);
    positions := array_fill(NULL::bigint, ARRAY[v_count]);
    FOR v_item IN 1 .. v_count LOOP
        IF v_known_positions[v_item] IS NOT NULL THEN
            v_ref_position := v_known_positions[v_item];
            v_ref_digest := v_known_digests[v_item];
        ELSIF v_firsts[v_item] <> v_item THEN
            v_ref_position := positions[v_firsts[v_item]];
            v_ref_digest := v_digests[v_firsts[v_item]];
        ELSE
            v_position := v_position + 1;
            v_chain := sha256(v_chain || v_digests[v_item] || convert_to(p_ids[v_item], 'UTF8'));
            v_new := v_new || v_item;
            v_new_chains := v_new_chains || v_chain;
            outcomes[v_item] := 'stored';
            positions[v_item] := v_position;
            CONTINUE;
        END IF;
        outcomes[v_item] := CASE WHEN v_ref_digest = v_digests[v_item]
                                 THEN 'duplicate' ELSE 'conflict' END;
        positions[v_item] := v_ref_position;
    END LOOP;

    INSERT INTO events (position, id, type, created_at, received_at, scheme, chain, body)
    SELECT v_head + n.k, u.id, u.type, u.created_at, coalesce(u.received_at, p_now),
           u.scheme, n.chain, u.body
      FROM unnest(v_new, v_new_chains) WITH ORDINALITY AS n(item, chain, k)
      JOIN unnest(p_ids, p_types, p_created, p_received, p_schemes, p_bodies)
           WITH ORDINALITY AS u(id, type, created_at, received_at, scheme, body, item)
        ON u.item = n.item;

    INSERT INTO deliveries
        (received_at, outcome, status, event_id, position, body_sha256, size, remote_addr, scheme, body)
    SELECT coalesce(u.received_at, p_now), u.outcome, 200, u.id, u.position,
           CASE WHEN u.outcome <> 'stored' THEN u.digest END, octet_length(u.body),
           u.remote_addr, u.scheme, CASE WHEN u.outcome = 'conflict' THEN u.body END
      FROM unnest(outcomes, positions, v_digests, p_ids, p_received, p_schemes, p_bodies, p_remotes)
           WITH ORDINALITY AS u(outcome, position, digest, id, received_at, scheme, body, remote_addr, item)
     ORDER BY u.item;

    INSERT INTO delivery_counts (outcome, deliveries)
    SELECT o.outcome, count(*) FROM unnest(outcomes) AS o(outcome) GROUP BY o.outcome
    ON CONFLICT (outcome) DO UPDATE
        SET deliveries = delivery_counts.deliveries + excluded.deliveries;

    IF v_position > v_head THEN
        INSERT INTO type_counts (type, events)
        SELECT p_types[n.item], count(*) FROM unnest(v_new) AS n(item) GROUP BY 1
        ON CONFLICT (type) DO UPDATE SET events = type_counts.events + excluded.events;
        UPDATE log_head SET position = v_position, chain = v_chain;
        PERFORM pg_notify('ikledger_events', v_position::text);
    END IF;
END
$$;

-- SECURITY DEFINER (a receiver role may append only through it): pin its search path
-- to the log's schema, and let only the roles granted it call it.
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION ikledger_append(text[], text[], text[], text[], text[], bytea[], '
        'text[], jsonb, text, integer, boolean) SET search_path = %I, pg_temp',
        current_schema());
END
$$;
REVOKE EXECUTE ON FUNCTION ikledger_append(text[], text[], text[], text[], text[], bytea[],
    text[], jsonb, text, integer, boolean) FROM PUBLIC;

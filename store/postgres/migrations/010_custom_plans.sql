-- Plan the append's statements for each call's own arrays (issue 20). plpgsql caches a
-- generic plan after five calls; made while the log is new, it reads `events` and
-- `tree_hashes` with sequential scans, and keeps doing so as they grow (nothing
-- re-plans a cached statement until the tables are analysed): a receiver started on
-- a fresh log paid a scan of the whole log per group. A custom plan sees each group's
-- size and the tables' current size, and costs about a tenth of a millisecond per call.
DO $$
BEGIN
    EXECUTE 'ALTER FUNCTION ikledger_append(text[], text[], text[], text[], text[], bytea[], '
        'text[], jsonb, text, integer, boolean) SET plan_cache_mode = force_custom_plan';
    EXECUTE 'ALTER FUNCTION ikledger_tree_grow() SET plan_cache_mode = force_custom_plan';
END
$$;

-- The writers' turn (store/postgres/append.py, issue 20): a receiver's writer locks the
-- head row before it takes its group, in the transaction that then calls
-- ikledger_append. A receiver role may not lock a row itself (FOR UPDATE needs UPDATE),
-- so it calls this function, SECURITY DEFINER like the append: the row lock it takes
-- belongs to the caller's transaction and is held until its COMMIT or ROLLBACK.
CREATE FUNCTION ikledger_turn() RETURNS bigint LANGUAGE sql SECURITY DEFINER AS $$
    SELECT position FROM log_head FOR UPDATE
$$;

DO $$
DECLARE
    appender text;
BEGIN
    EXECUTE format('ALTER FUNCTION ikledger_turn() SET search_path = %I, pg_temp',
        current_schema());
    -- Whoever may append may take the turn (receiver roles made before this function).
    FOR appender IN
        SELECT DISTINCT grantee FROM information_schema.role_routine_grants
        WHERE routine_schema = current_schema() AND routine_name = 'ikledger_append'
            AND privilege_type = 'EXECUTE' AND grantee <> current_user
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION ikledger_turn() TO %I', appender);
    END LOOP;
END
$$;
REVOKE EXECUTE ON FUNCTION ikledger_turn() FROM PUBLIC;

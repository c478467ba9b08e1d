-- The log's identity (EventStore.log_id): a random id given when the log is created, or
-- by this migration to a log created before identities. Nothing copies it: a backup
-- is a SQLite file with an id of its own, an import lands in a log that has one.
CREATE TABLE log_meta (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    log_id text    NOT NULL
);
INSERT INTO log_meta (log_id) VALUES (replace(gen_random_uuid()::text, '-', ''));

-- Receiver roles made before this table existed (role.sql) read it too: whoever may
-- read the events may read the log's identity.
DO $$
DECLARE
    reader text;
BEGIN
    FOR reader IN
        SELECT DISTINCT grantee FROM information_schema.role_table_grants
        WHERE table_schema = current_schema() AND table_name = 'events'
            AND privilege_type = 'SELECT' AND grantee <> current_user
    LOOP
        EXECUTE format('GRANT SELECT ON log_meta TO %I', reader);
    END LOOP;
END
$$;

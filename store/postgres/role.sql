-- A role for receivers: reads the log and appends only through ikledger_append.
-- Run as the owner of the log's schema once the schema exists (any first start makes
-- it). The role cannot INSERT, UPDATE or DELETE in any table itself, except INSERT a
-- checkpoint; the triggers on `events`, `tree_hashes` and `checkpoints` refuse UPDATE,
-- DELETE and TRUNCATE even to the owner.
-- Safe to run again: an existing role of that name keeps its grants and gets this
-- password (CREATE ROLE needs the CREATEROLE attribute, or a superuser).
DO $ikledger_role$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = {role_name}) THEN
        ALTER ROLE {role} LOGIN PASSWORD {password};
    ELSE
        CREATE ROLE {role} LOGIN PASSWORD {password};
    END IF;
END
$ikledger_role$;
GRANT CONNECT ON DATABASE {database} TO {role};
GRANT USAGE ON SCHEMA {schema} TO {role};
GRANT SELECT ON {schema}.events, {schema}.log_head, {schema}.deliveries, {schema}.type_counts,
    {schema}.delivery_counts, {schema}.ikledger_schema, {schema}.log_meta, {schema}.tree_hashes,
    {schema}.checkpoints, {schema}.erasures, {schema}.erased_bodies TO {role};
GRANT INSERT ON {schema}.checkpoints TO {role};
GRANT EXECUTE ON FUNCTION {schema}.ikledger_append(text[], text[], text[], text[], text[],
    bytea[], text[], jsonb, text, integer, boolean) TO {role};
-- Forwarding's state (migrations/004_forwarding.sql) is mutable by design: every
-- receiver may forward, so the role reads and writes those tables (never the log's).
GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.fwd_destinations, {schema}.fwd_items,
    {schema}.fwd_attempts, {schema}.fwd_replays, {schema}.fwd_leases TO {role};

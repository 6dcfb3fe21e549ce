-- The baseline of the schema, one migration per domain, in the order a reader
-- meets them: platform (this file), tenancy and the lint gate, jobs, the key
-- vault, the catalog and routing, tenant economics, reputation, schedules and
-- retention, artifacts. Until a first release a change edits the migration that
-- owns the object; a new migration is only for a new domain (CONTRIBUTING.md).
--
-- The Supabase platform pieces a plain PostgreSQL lacks (roles, the auth
-- schema, default privileges) are not a migration: sql/bootstrap/ creates them
-- where they are missing.

-- Schema for helpers that RLS policies and SECURITY DEFINER code need but that
-- must not be reachable through the Data API (it is not an exposed schema).
create schema if not exists private;
comment on schema private is 'Internal helpers for policies and definer functions; never exposed through the Data API.';

revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

-- Functions created in private are not executable by everyone by default.
alter default privileges in schema private revoke execute on functions from public;

-- Schema for helpers that RLS policies and SECURITY DEFINER code need but that
-- must not be reachable through the Data API (it is not an exposed schema).
create schema if not exists private;
comment on schema private is 'Internal helpers for policies and definer functions; never exposed through the Data API.';

revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

-- Functions created in private are not executable by everyone by default.
alter default privileges in schema private revoke execute on functions from public;

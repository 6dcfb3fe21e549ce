-- Stored responses (OpenAI Responses API `store` and `previous_response_id`).
--
-- The router keeps each answered Responses turn a tenant asked to store (the
-- default, as OpenAI's): its input items and the Response object it answered,
-- until expires_at (30 days). A turn names the one it continued, so a
-- conversation is a chain of rows, each turn stored once. Only the router
-- (service role) reads and writes them, always for one tenant: another
-- tenant's id is answered as one that does not exist.

create table public.stored_responses (
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- resp_… : the router's own (translated answers) or the OpenAI upstream's (pass-through).
  id text not null check (length(id) between 1 and 200),
  -- The stored response this one continued; null for a conversation's first turn.
  previous_response_id text check (length(previous_response_id) between 1 and 200),
  request_id text not null,
  model_alias text not null,
  -- This turn's input items (earlier turns are in their own rows).
  input jsonb not null check (jsonb_typeof(input) = 'array'),
  -- The Response object as the client received it (its output items included).
  response jsonb not null check (jsonb_typeof(response) = 'object'),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (tenant_id, id),
  check (expires_at > created_at)
);
comment on table public.stored_responses is 'Responses API turns stored per tenant (store: true): input items and the Response object, until expires_at; previous_response_id chains a conversation.';
create index stored_responses_expires_at_idx on public.stored_responses (expires_at);

alter table public.stored_responses enable row level security;
revoke all on table public.stored_responses from anon, authenticated;
grant select, insert, delete on table public.stored_responses to service_role;

create policy "The service role reads stored responses"
  on public.stored_responses for select to service_role
  using (true);
create policy "The service role stores responses"
  on public.stored_responses for insert to service_role
  with check (true);
create policy "The service role deletes stored responses"
  on public.stored_responses for delete to service_role
  using (true);

-- Retention: expired turns are deleted in batches by the schedule below.
create function public.purge_expired_responses(p_limit integer default 10000)
returns integer
language sql
set search_path = ''
as $$
  with expired as (
    select tenant_id, id from public.stored_responses
    where expires_at < now()
    order by expires_at
    limit p_limit
  ), deleted as (
    delete from public.stored_responses s using expired e
    where s.tenant_id = e.tenant_id and s.id = e.id
    returning 1
  )
  select count(*)::integer from deleted
$$;
comment on function public.purge_expired_responses(integer) is 'Deletes up to p_limit stored responses past their expires_at; returns how many.';
revoke execute on function public.purge_expired_responses(integer) from public, anon, authenticated;
grant execute on function public.purge_expired_responses(integer) to service_role;

insert into public.schedules (name, interval_seconds, kind, sql_call, http_path, description) values
  ('purge_expired_responses', 3600, 'sql', 'public.purge_expired_responses()', null,
   'Deletes stored Responses API turns past their 30-day expiry.');

-- On pg_cron, where installed, with the other schedules.
select private.schedule_maintenance();

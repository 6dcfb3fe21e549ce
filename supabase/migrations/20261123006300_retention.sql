-- Retention: how long each kind of data is kept (public.retention_settings)
-- and batched purges that keep the totals and the audit trail honest:
--   job_events        events of finished jobs (succeeded, cancelled, failed_dlq) older than the retention, through the
--                     one narrow path the append-only trigger allows (purge_job_events sets its marker);
--   usage_records     only days already rolled into usage_daily, counted in usage_rollups (the invariant stays empty);
--   job_dead_letters  only dead letters an operator requeued (pending ones wait for an operator);
--   secure_keys_audit kept longest: at least 365 days, and never shorter than any other kind;
--   scheduled_runs    the schedules' own run log.
-- Every purge that deletes something writes a row to public.retention_log.

create table public.retention_settings (
  kind text primary key
    check (kind in ('job_events', 'usage_records', 'job_dead_letters', 'secure_keys_audit', 'scheduled_runs')),
  days integer not null check (days between 1 and 36500),
  updated_at timestamptz not null default now(),
  constraint retention_settings_audit_kept_long check (kind <> 'secure_keys_audit' or days >= 365)
);
comment on table public.retention_settings is 'How many days each kind of data is kept before the retention purge deletes it; the key audit at least 365 and never less than any other kind.';

insert into public.retention_settings (kind, days) values
  ('job_events', 30), ('usage_records', 90), ('job_dead_letters', 30), ('secure_keys_audit', 730), ('scheduled_runs', 14);

create table public.retention_log (
  id bigint generated always as identity primary key,
  kind text not null,
  deleted bigint not null check (deleted > 0),
  -- Rows older than this were eligible.
  cutoff timestamptz not null,
  at timestamptz not null default now()
);
comment on table public.retention_log is 'Audit of the retention purge: what kind, how many rows, which cutoff and when.';
create index retention_log_at_idx on public.retention_log (at);

alter table public.retention_settings enable row level security;
alter table public.retention_log enable row level security;
revoke all on table public.retention_settings, public.retention_log from anon, authenticated, service_role;
revoke all on sequence public.retention_log_id_seq from anon, authenticated, service_role;
grant select on table public.retention_settings, public.retention_log to service_role;
grant update (days) on table public.retention_settings to service_role;

create policy "The service role reads the retention settings"
  on public.retention_settings for select to service_role
  using (true);

create policy "The service role changes retention periods"
  on public.retention_settings for update to service_role
  using (true) with check (true);

create policy "The service role reads the retention log"
  on public.retention_log for select to service_role
  using (true);

-- The cutoff of a kind: now minus its days; the key audit's never sooner than any other kind's.
create function private.retention_cutoff(kind text)
returns timestamptz
language sql
stable
set search_path = ''
as $$
  select pg_catalog.now() - pg_catalog.make_interval(days => case
    when retention_cutoff.kind = 'secure_keys_audit' then (select max(s.days) from public.retention_settings s)
    else (select s.days from public.retention_settings s where s.kind = retention_cutoff.kind)
  end)
$$;
comment on function private.retention_cutoff(text) is 'Rows of this kind older than the returned time may be purged.';
revoke execute on function private.retention_cutoff(text) from public, anon, authenticated, service_role;

create function private.check_purge_batch(batch integer)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if batch is null or batch < 1 or batch > 100000 then
    raise exception 'batch must be between 1 and 100000' using errcode = 'invalid_parameter_value';
  end if;
end
$$;
revoke execute on function private.check_purge_batch(integer) from public, anon, authenticated, service_role;

-- job_events stays append-only for everyone, except DELETE inside
-- purge_job_events, which sets switchyard.job_events_purge for its own call
-- only (a function-level SET, restored on return); no role but the owner holds
-- DELETE on the table anyway.
create or replace function private.refuse_job_event_changes()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if tg_op = 'DELETE' and pg_catalog.current_setting('switchyard.job_events_purge', true) = 'on' then
    return null;
  end if;
  raise exception 'job_events is append-only: % is not allowed', lower(tg_op)
    using errcode = 'SYJ06';
end
$$;

create function public.purge_job_events(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
set switchyard.job_events_purge = 'on'
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('job_events');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  -- Oldest first by id (ids grow with time), so the scan stops after one batch.
  delete from public.job_events e
  where e.id in (
    select e2.id from public.job_events e2
    join public.jobs j on j.id = e2.job_id
    where e2.at < v_cutoff and j.status in ('succeeded', 'cancelled', 'failed_dlq')
    order by e2.id
    limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('job_events', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_job_events(integer) is 'Deletes up to batch events, older than the retention, of finished jobs (the only DELETE job_events allows); logged in retention_log.';

create function public.purge_usage_records(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('usage_records');
  v_rolled_through date;
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  select max(r.day) into v_rolled_through from public.usage_rollups r;
  if v_rolled_through is null then
    return 0;
  end if;
  -- Only days already rolled up; the purged amounts are counted on their rollup in the same statement.
  with doomed as (
    select u.request_id from public.usage_records u
    where u.created_at < least(v_cutoff, ((v_rolled_through + 1)::timestamp at time zone 'UTC'))
      and exists (select 1 from public.usage_rollups r
                  where r.tenant_id = u.tenant_id and r.day = (u.created_at at time zone 'UTC')::date)
    limit batch
    for update skip locked
  ),
  deleted as (
    delete from public.usage_records u using doomed d where u.request_id = d.request_id
    returning u.tenant_id, (u.created_at at time zone 'UTC')::date as day, u.cost_usd_micros,
              u.prompt_tokens + u.completion_tokens as tokens
  ),
  per_day as (
    select d.day, d.tenant_id, count(*) as records, sum(d.cost_usd_micros) as cost, sum(d.tokens) as tokens
    from deleted d group by d.day, d.tenant_id
  ),
  counted as (
    update public.usage_rollups r
    set purged_records = r.purged_records + p.records,
        purged_cost_usd_micros = r.purged_cost_usd_micros + p.cost,
        purged_tokens = r.purged_tokens + p.tokens
    from per_day p
    where r.day = p.day and r.tenant_id = p.tenant_id
    returning 1
  )
  select coalesce(sum(p.records), 0)::integer into v_deleted from per_day p;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('usage_records', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_usage_records(integer) is 'Deletes up to batch usage records older than the retention, of rolled-up days only, counting them on usage_rollups so totals stay exact.';

create function public.purge_dead_letters(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('job_dead_letters');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.job_dead_letters l
  where l.id in (
    select l2.id from public.job_dead_letters l2
    where l2.requeued_at is not null and l2.requeued_at < v_cutoff
    limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('job_dead_letters', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_dead_letters(integer) is 'Deletes up to batch dead letters requeued before the retention cutoff; pending ones are kept for an operator.';

create function public.purge_secure_keys_audit(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('secure_keys_audit');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.secure_keys_audit a
  where a.id in (select a2.id from public.secure_keys_audit a2 where a2.at < v_cutoff order by a2.id limit batch);
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('secure_keys_audit', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_secure_keys_audit(integer) is 'Deletes up to batch key-audit rows older than the longest retention (at least 365 days).';

create function public.purge_scheduled_runs(batch integer default 1000)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_cutoff timestamptz := private.retention_cutoff('scheduled_runs');
  v_deleted integer;
begin
  perform private.check_purge_batch(batch);
  delete from public.scheduled_runs r
  where r.id in (
    select r2.id from public.scheduled_runs r2 where r2.started_at < v_cutoff and r2.finished_at is not null
    order by r2.started_at limit batch
  );
  get diagnostics v_deleted = row_count;
  if v_deleted > 0 then
    insert into public.retention_log (kind, deleted, cutoff) values ('scheduled_runs', v_deleted, v_cutoff);
  end if;
  return v_deleted;
end
$$;
comment on function public.purge_scheduled_runs(integer) is 'Deletes up to batch finished scheduled runs older than the retention.';

-- The retention_purge schedule: each purge in batches until a batch comes
-- back short or max_batches ran (the next run carries on). Returns the rows
-- deleted per kind.
create function public.run_retention(batch integer default 1000, max_batches integer default 10)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_kind text;
  v_deleted integer;
  v_total integer;
  v_batches integer;
  v_result jsonb := '{}'::jsonb;
begin
  perform private.check_purge_batch(batch);
  if max_batches is null or max_batches < 1 or max_batches > 1000 then
    raise exception 'max_batches must be between 1 and 1000' using errcode = 'invalid_parameter_value';
  end if;
  foreach v_kind in array array['job_events', 'usage_records', 'job_dead_letters', 'secure_keys_audit', 'scheduled_runs'] loop
    v_total := 0;
    v_batches := 0;
    loop
      v_deleted := case v_kind
        when 'job_events' then public.purge_job_events(batch)
        when 'usage_records' then public.purge_usage_records(batch)
        when 'job_dead_letters' then public.purge_dead_letters(batch)
        when 'secure_keys_audit' then public.purge_secure_keys_audit(batch)
        else public.purge_scheduled_runs(batch)
      end;
      v_total := v_total + v_deleted;
      v_batches := v_batches + 1;
      exit when v_deleted < batch or v_batches >= max_batches;
    end loop;
    v_result := v_result || pg_catalog.jsonb_build_object(v_kind, v_total);
  end loop;
  return v_result;
end
$$;
comment on function public.run_retention(integer, integer) is 'Runs every retention purge in batches (at most max_batches each); returns rows deleted per kind.';

revoke execute on function public.purge_job_events(integer), public.purge_usage_records(integer),
  public.purge_dead_letters(integer), public.purge_secure_keys_audit(integer), public.purge_scheduled_runs(integer),
  public.run_retention(integer, integer)
  from public, anon, authenticated;
grant execute on function public.purge_job_events(integer), public.purge_usage_records(integer),
  public.purge_dead_letters(integer), public.purge_secure_keys_audit(integer), public.purge_scheduled_runs(integer),
  public.run_retention(integer, integer)
  to service_role;

insert into public.schedules (name, interval_seconds, kind, sql_call, description) values
  ('retention_purge', 3600, 'sql', 'public.run_retention()',
   'Deletes job events, rolled-up usage records, requeued dead letters, key audit and run log past their retention.');

-- Put the two new schedules (usage_rollup, retention_purge) on pg_cron where it exists.
do $$
declare
  v_count integer := private.schedule_maintenance();
begin
  if v_count is not null then
    raise notice 'pg_cron: % schedules', v_count;
  end if;
end
$$;

-- Requeue out of the dead-letter queue. The job keeps its id and its history:
-- failed_dlq -> queued is a transition like any other (event 'requeued',
-- with who, why and the request key in its details), the dead-letter row is
-- stamped requeued_at/by/reason, and attempts start again from 0 so the job
-- gets its full max_attempts (the attempts it used are in the event and the
-- dead-letter row). Requeueing a dead letter that was already requeued
-- changes nothing, whichever request key is used.

-- Answers of requeue_dead_letters per (actor, request key), so a retried
-- request gets the same answer and changes nothing.
create table private.dead_letter_requeue_requests (
  actor text not null,
  request_key text not null check (length(request_key) between 1 and 255),
  -- md5 of the request's parameters: the same key with another request is refused.
  request_hash text not null,
  response jsonb not null,
  created_at timestamptz not null default now(),
  primary key (actor, request_key)
);
comment on table private.dead_letter_requeue_requests is 'Answers of dlq-retry by (actor, Idempotency-Key), replayed when a request is retried.';
revoke all on table private.dead_letter_requeue_requests from public, anon, authenticated;
grant select on table private.dead_letter_requeue_requests to service_role;

-- Requeues one job out of the DLQ. Returns what happened:
--   requeued           the pending dead letter was requeued now
--   would_requeue      dry_run: it would have been
--   already_requeued   no dead letter is waiting (an operator requeued it), or
--                      this request key already requeued this job: no-op
--   not_dead_lettered  the job never went to the DLQ
create function public.requeue_dead_letter(
  job_id uuid,
  actor text,
  reason text,
  request_key text default null,
  dry_run boolean default false
)
returns text
language plpgsql
security definer
set search_path = ''
set switchyard.job_operation = 'requeue'
set switchyard.job_event_details = ''
as $$
#variable_conflict use_column
declare
  v_job record;
  v_letter_id uuid;
begin
  if nullif(btrim(requeue_dead_letter.actor), '') is null or length(requeue_dead_letter.actor) > 200 then
    raise exception 'actor: required, at most 200 characters' using errcode = '22023';
  end if;
  if nullif(btrim(requeue_dead_letter.reason), '') is null or length(requeue_dead_letter.reason) > 1000 then
    raise exception 'reason: required, at most 1000 characters' using errcode = '22023';
  end if;
  if requeue_dead_letter.request_key is not null and length(requeue_dead_letter.request_key) not between 1 and 255 then
    raise exception 'request_key: must be 1 to 255 characters' using errcode = '22023';
  end if;

  -- The job row lock serializes concurrent requeues of the same job.
  select j.id, j.status, j.attempts into v_job
  from public.jobs j where j.id = requeue_dead_letter.job_id
  for update;
  if not found then
    raise exception 'job % not found', requeue_dead_letter.job_id using errcode = 'SYJ03';
  end if;

  if requeue_dead_letter.request_key is not null and exists (
    select 1 from public.job_dead_letters d
    where d.job_id = requeue_dead_letter.job_id and d.requeue_request_key = requeue_dead_letter.request_key
  ) then
    return 'already_requeued';
  end if;

  select d.id into v_letter_id
  from public.job_dead_letters d
  where d.job_id = requeue_dead_letter.job_id and d.requeued_at is null;
  if not found then
    if exists (select 1 from public.job_dead_letters d where d.job_id = requeue_dead_letter.job_id) then
      return 'already_requeued';
    end if;
    return 'not_dead_lettered';
  end if;
  if v_job.status <> 'failed_dlq' then
    raise exception 'job % has a waiting dead letter but is %', requeue_dead_letter.job_id, v_job.status
      using errcode = 'SYJ01';
  end if;
  if coalesce(requeue_dead_letter.dry_run, false) then
    return 'would_requeue';
  end if;

  update public.job_dead_letters d
  set requeued_at = pg_catalog.now(),
      requeued_by = requeue_dead_letter.actor,
      requeue_reason = requeue_dead_letter.reason,
      requeue_request_key = requeue_dead_letter.request_key
  where d.id = v_letter_id;

  perform pg_catalog.set_config('switchyard.job_event_details', pg_catalog.jsonb_build_object(
    'actor', requeue_dead_letter.actor,
    'reason', requeue_dead_letter.reason,
    'request_key', requeue_dead_letter.request_key,
    'dead_letter_id', v_letter_id,
    'previous_attempts', v_job.attempts)::text, true);
  update public.jobs j
  set status = 'queued', attempts = 0, run_at = pg_catalog.now(), lease_token = null, lease_expires_at = null,
      worker = null, updated_at = pg_catalog.now()
  where j.id = requeue_dead_letter.job_id;
  return 'requeued';
end
$$;
comment on function public.requeue_dead_letter(uuid, text, text, text, boolean) is 'Requeues a dead-lettered job (same id, attempts reset) and audits who/why; idempotent: a requeued dead letter is not requeued again.';

-- Requeues many dead letters: by job ids, or by a filter {kind, since,
-- until, error, tenant_id} (oldest first, at most max_count). tenant_id
-- restricts everything to one tenant (tenant operators); job ids outside it
-- count as not found. Answers {requeued: [job ids], skipped: [{id, reason}],
-- dry_run}; with a request key the answer is stored and a retried request
-- gets it back (replayed: true) without changing anything.
create function public.requeue_dead_letters(
  job_ids uuid[],
  filter jsonb,
  actor text,
  reason text,
  request_key text default null,
  dry_run boolean default false,
  max_count integer default 100,
  tenant_id uuid default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_dry_run boolean := coalesce(requeue_dead_letters.dry_run, false);
  v_max integer := coalesce(requeue_dead_letters.max_count, 100);
  v_hash text;
  v_stored record;
  v_ids uuid[];
  v_missing uuid[];
  v_unknown_key text;
  v_id uuid;
  v_outcomes jsonb := '{}'::jsonb;
  v_response jsonb;
begin
  if nullif(btrim(requeue_dead_letters.reason), '') is null or length(requeue_dead_letters.reason) > 1000 then
    raise exception 'reason: required, at most 1000 characters' using errcode = '22023';
  end if;
  if v_max not between 1 and 1000 then
    raise exception 'max: must be between 1 and 1000' using errcode = '22023';
  end if;
  if (requeue_dead_letters.job_ids is null) = (requeue_dead_letters.filter is null) then
    raise exception 'ids: give either ids or filter, not both or neither' using errcode = '22023';
  end if;

  v_hash := pg_catalog.md5(pg_catalog.jsonb_build_object(
    'ids', requeue_dead_letters.job_ids, 'filter', requeue_dead_letters.filter, 'reason', requeue_dead_letters.reason,
    'max', v_max, 'tenant_id', requeue_dead_letters.tenant_id)::text);
  if requeue_dead_letters.request_key is not null and not v_dry_run then
    -- Two concurrent requests with one key: the second waits and replays.
    perform pg_catalog.pg_advisory_xact_lock(
      pg_catalog.hashtextextended(requeue_dead_letters.actor || '/' || requeue_dead_letters.request_key, 0));
    select r.request_hash, r.response into v_stored
    from private.dead_letter_requeue_requests r
    where r.actor = requeue_dead_letters.actor and r.request_key = requeue_dead_letters.request_key;
    if found then
      if v_stored.request_hash <> v_hash then
        raise exception 'Idempotency-Key % was already used for a different dlq-retry request', requeue_dead_letters.request_key
          using errcode = 'SYJ07';
      end if;
      return v_stored.response || '{"replayed": true}'::jsonb;
    end if;
  end if;

  if requeue_dead_letters.job_ids is not null then
    if cardinality(requeue_dead_letters.job_ids) > v_max then
      raise exception 'ids: at most % ids (max)', v_max using errcode = '22023';
    end if;
    select array_agg(x.id order by x.first) into v_ids
    from (select u.id, min(u.n) as first
          from unnest(requeue_dead_letters.job_ids) with ordinality as u(id, n)
          where u.id is not null
          group by u.id) x;
    v_ids := coalesce(v_ids, '{}');
    select array_agg(u.id) into v_missing
    from unnest(v_ids) as u(id)
    where not exists (
      select 1 from public.jobs j
      where j.id = u.id and (requeue_dead_letters.tenant_id is null or j.tenant_id = requeue_dead_letters.tenant_id));
    if v_missing is not null then
      raise exception 'dead letter not found: %', pg_catalog.array_to_string(v_missing, ', ') using errcode = 'SYJ03';
    end if;
  else
    if pg_catalog.jsonb_typeof(requeue_dead_letters.filter) <> 'object' then
      raise exception 'filter: must be an object' using errcode = '22023';
    end if;
    select k into v_unknown_key
    from pg_catalog.jsonb_object_keys(requeue_dead_letters.filter) k
    where k not in ('kind', 'since', 'until', 'error', 'tenant_id')
    limit 1;
    if v_unknown_key is not null then
      raise exception 'filter.%: unknown filter (use kind, since, until, error, tenant_id)', v_unknown_key using errcode = '22023';
    end if;
    if requeue_dead_letters.filter ? 'kind' and not exists (
      select 1 from public.job_kinds k where k.kind = requeue_dead_letters.filter ->> 'kind') then
      raise exception 'unknown job kind "%"', requeue_dead_letters.filter ->> 'kind' using errcode = 'SYJ04';
    end if;
    select array_agg(x.job_id order by x.failed_at, x.id) into v_ids
    from (
      select d.job_id, d.failed_at, d.id
      from public.job_dead_letters d
      where d.requeued_at is null
        and (requeue_dead_letters.tenant_id is null or d.tenant_id = requeue_dead_letters.tenant_id)
        and (requeue_dead_letters.filter ->> 'tenant_id' is null or d.tenant_id = (requeue_dead_letters.filter ->> 'tenant_id')::uuid)
        and (requeue_dead_letters.filter ->> 'kind' is null or d.kind = requeue_dead_letters.filter ->> 'kind')
        and (requeue_dead_letters.filter ->> 'since' is null or d.failed_at >= (requeue_dead_letters.filter ->> 'since')::timestamptz)
        and (requeue_dead_letters.filter ->> 'until' is null or d.failed_at < (requeue_dead_letters.filter ->> 'until')::timestamptz)
        and (requeue_dead_letters.filter ->> 'error' is null or d.last_error ilike
              '%' || replace(replace(replace(requeue_dead_letters.filter ->> 'error', '\', '\\'), '%', '\%'), '_', '\_') || '%')
      order by d.failed_at, d.id
      limit v_max
    ) x;
    v_ids := coalesce(v_ids, '{}');
  end if;

  -- Lock jobs in one global order (by id), so concurrent requests cannot
  -- deadlock; answer in the request's order.
  for v_id in select u.id from unnest(v_ids) as u(id) order by u.id loop
    v_outcomes := v_outcomes || pg_catalog.jsonb_build_object(v_id::text, public.requeue_dead_letter(
      v_id, requeue_dead_letters.actor, requeue_dead_letters.reason, requeue_dead_letters.request_key, v_dry_run));
  end loop;

  select pg_catalog.jsonb_build_object(
    'requeued', coalesce(pg_catalog.jsonb_agg(to_jsonb(u.id) order by u.n) filter (where v_outcomes ->> u.id::text in ('requeued', 'would_requeue')), '[]'::jsonb),
    'skipped', coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('id', u.id, 'reason', v_outcomes ->> u.id::text) order by u.n)
                 filter (where v_outcomes ->> u.id::text not in ('requeued', 'would_requeue')), '[]'::jsonb),
    'dry_run', v_dry_run)
  into v_response
  from unnest(v_ids) with ordinality as u(id, n);

  if requeue_dead_letters.request_key is not null and not v_dry_run then
    insert into private.dead_letter_requeue_requests (actor, request_key, request_hash, response)
    values (requeue_dead_letters.actor, requeue_dead_letters.request_key, v_hash, v_response);
  end if;
  return v_response;
end
$$;
comment on function public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid) is 'Requeues dead letters by job ids or filter, with dry run and a stored answer per request key; backs dlq-retry.';

revoke execute on function
  public.requeue_dead_letter(uuid, text, text, text, boolean),
  public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid)
  from public, anon, authenticated;
grant execute on function
  public.requeue_dead_letter(uuid, text, text, text, boolean),
  public.requeue_dead_letters(uuid[], jsonb, text, text, text, boolean, integer, uuid)
  to service_role;

-- Feedback on LLM responses: a tenant rates a request it made (score 0..1;
-- thumbs up = 1, down = 0), once per (request, source), where the source is
-- the tenant API key or the user that sent the feedback. The request is found
-- by its usage record (the request id the client saw); provider, model and
-- domain tag are copied from it so the reputation refresh needs no join.
-- The rating is immutable: the same rating again returns the stored row, a
-- different one for the same (request, source) is a conflict (the refresh may
-- already have folded the first one into the reputation).

create table public.request_feedback (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  -- No foreign key: usage_records is partitioned by month (its key holds created_at). record_feedback
  -- finds the usage record first, and retention deletes a month's feedback with the month's records.
  request_id text not null,
  -- 'api_key:<uuid>' or 'user:<uuid>': who rated; the idempotency key with request_id.
  source text not null check (source ~ '^(api_key|user):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
  api_key_id uuid references public.tenant_api_keys (id) on delete set null,
  user_id uuid,
  score real not null check (score between 0 and 1),
  tags text[] not null default '{}' check (cardinality(tags) <= 16),
  comment text check (length(comment) <= 2000),
  provider_id uuid references public.llm_providers (id) on delete set null,
  upstream_model text,
  -- The request's x-switchyard-domain tag; '' when it had none.
  domain text not null default '',
  created_at timestamptz not null default now(),
  -- When refresh_model_reputation folded this rating in; null = not yet.
  applied_at timestamptz,
  constraint request_feedback_once_per_source unique (request_id, source)
);
comment on table public.request_feedback is 'Ratings of LLM responses by the tenant that made the request, one per request and source; input to model_reputation.';
create index request_feedback_tenant_id_idx on public.request_feedback (tenant_id, created_at);
create index request_feedback_api_key_id_idx on public.request_feedback (api_key_id);
create index request_feedback_provider_id_idx on public.request_feedback (provider_id);
create index request_feedback_pending_idx on public.request_feedback (created_at) where applied_at is null;

alter table public.request_feedback enable row level security;
revoke all on table public.request_feedback from anon, authenticated;
grant select on table public.request_feedback to authenticated;
grant all on table public.request_feedback to service_role;

create policy "Members can read their tenants' feedback"
  on public.request_feedback for select to authenticated
  using (tenant_id in (select private.tenant_ids_of_current_user()));

-- Records one rating. Answers {status: 'created' | 'existing' | 'conflict' |
-- 'unknown_request', feedback?}: 'unknown_request' when the request id has no
-- usage record of this tenant (another tenant's request looks the same). The
-- domain tag comes from the usage record (a request that ran under a budget
-- lease has no reservation of its own), else from the reservation.
create function public.record_feedback(
  p_tenant_id uuid,
  p_request_id text,
  p_source text,
  p_api_key_id uuid,
  p_user_id uuid,
  p_score real,
  p_tags text[] default '{}',
  p_comment text default null
)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_usage record;
  v_row public.request_feedback;
begin
  if p_score is null or p_score < 0 or p_score > 1 then
    raise exception 'score must be between 0 and 1' using errcode = 'invalid_parameter_value';
  end if;
  select u.provider, u.upstream_model, coalesce(u.domain, r.domain, '') as domain
    into v_usage
  from public.usage_records u
  left join public.budget_reservations r on r.request_id = u.request_id
  where u.request_id = p_request_id and u.tenant_id = p_tenant_id;
  if not found then
    return pg_catalog.jsonb_build_object('status', 'unknown_request');
  end if;

  insert into public.request_feedback as f (
    tenant_id, request_id, source, api_key_id, user_id, score, tags, comment, provider_id, upstream_model, domain)
  values (p_tenant_id, p_request_id, p_source, p_api_key_id, p_user_id, p_score, coalesce(p_tags, '{}'), p_comment,
          (select p.id from public.llm_providers p where p.slug = v_usage.provider), v_usage.upstream_model,
          v_usage.domain)
  on conflict on constraint request_feedback_once_per_source do nothing
  returning f.* into v_row;
  if v_row.id is not null then
    return pg_catalog.jsonb_build_object('status', 'created', 'feedback', pg_catalog.to_jsonb(v_row));
  end if;

  select f.* into v_row from public.request_feedback f where f.request_id = p_request_id and f.source = p_source;
  return pg_catalog.jsonb_build_object(
    'status', case when v_row.score = p_score and v_row.tags = coalesce(p_tags, '{}')
                        and v_row.comment is not distinct from p_comment then 'existing' else 'conflict' end,
    'feedback', pg_catalog.to_jsonb(v_row));
end
$$;
comment on function public.record_feedback(uuid, text, text, uuid, uuid, real, text[], text) is 'Records a rating of a request once per (request, source); idempotent, a different rating is a conflict.';
revoke execute on function public.record_feedback(uuid, text, text, uuid, uuid, real, text[], text) from public, anon, authenticated;
grant execute on function public.record_feedback(uuid, text, text, uuid, uuid, real, text[], text) to service_role;

-- Model reputation: per (tenant or global, domain tag, provider, upstream
-- model), an exponentially decayed summary of two kinds of evidence:
--   feedback: ratings from request_feedback (a decayed average score and its
--             decayed weight);
--   signals:  automatic outcomes the router aggregates per isolate and flushes
--             in batches (record_quality_signals): requests and failures
--             (upstream errors, timeouts, refusals, invalid JSON in JSON mode).
-- score = quality x reliability, both pulled towards a prior of one neutral
-- observation so a single event cannot pin a model at 0 or 1:
--   quality     = (feedback_score * feedback_weight + 0.5) / (feedback_weight + 1)
--   reliability = (signal_requests - signal_failures + 1) / (signal_requests + 1)
-- A model without evidence scores 0.5 * 1 = 0.5 (the router uses the same
-- value for a model with no row). refresh_model_reputation folds pending
-- evidence in batches (a job, never the request path): before adding new
-- evidence it multiplies the stored weights by 0.5 ^ (age / half-life), so old
-- evidence fades and a model can recover. Every observation updates four rows:
-- (tenant, domain), (tenant, ''), (global, domain), (global, '') — '' being
-- every domain; a request without a domain tag updates the two '' rows only.

create table public.model_quality_signals (
  id bigint generated always as identity primary key,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  domain text not null default '',
  provider_id uuid not null references public.llm_providers (id) on delete cascade,
  upstream_model text not null check (length(upstream_model) between 1 and 200),
  requests integer not null check (requests > 0),
  failures integer not null check (failures between 0 and requests),
  -- Failures by kind: {"error": n, "timeout": n, "refusal": n, "invalid_json": n}.
  kinds jsonb not null default '{}'::jsonb check (jsonb_typeof(kinds) = 'object'),
  created_at timestamptz not null default now()
);
comment on table public.model_quality_signals is 'Automatic quality outcomes flushed by router isolates, waiting to be folded into model_reputation.';
create index model_quality_signals_tenant_id_idx on public.model_quality_signals (tenant_id);
create index model_quality_signals_provider_id_idx on public.model_quality_signals (provider_id);

-- The score from the decayed evidence (see the header); immutable, so a generated column can use it.
create function private.reputation_score(
  feedback_score double precision,
  feedback_weight double precision,
  signal_requests double precision,
  signal_failures double precision
)
returns real
language sql
immutable
set search_path = ''
as $$
  select least(1, greatest(0,
    ((feedback_score * feedback_weight + 0.5) / (feedback_weight + 1))
    * ((greatest(signal_requests - signal_failures, 0) + 1) / (signal_requests + 1))))::real
$$;
revoke execute on function private.reputation_score(double precision, double precision, double precision, double precision)
  from public, anon;

-- How much of its weight evidence last updated at `updated_at` keeps now: 0.5 ^ (age / half-life).
create function private.reputation_decay(updated_at timestamptz, half_life_seconds double precision)
returns double precision
language sql
stable
set search_path = ''
as $$
  select pg_catalog.power(0.5::double precision,
    greatest(extract(epoch from (now() - updated_at))::double precision, 0) / half_life_seconds)
$$;
revoke execute on function private.reputation_decay(timestamptz, double precision) from public, anon;

create table public.model_reputation (
  id uuid primary key default gen_random_uuid(),
  -- null: the global row over every tenant's evidence.
  tenant_id uuid references public.tenants (id) on delete cascade,
  -- '' covers every domain.
  domain text not null default '',
  provider_id uuid not null references public.llm_providers (id) on delete cascade,
  upstream_model text not null,
  feedback_score double precision not null default 0.5 check (feedback_score between 0 and 1),
  feedback_weight double precision not null default 0 check (feedback_weight >= 0),
  signal_requests double precision not null default 0 check (signal_requests >= 0),
  signal_failures double precision not null default 0 check (signal_failures >= 0),
  score real not null generated always as (
    private.reputation_score(feedback_score, feedback_weight, signal_requests, signal_failures)) stored,
  -- Observations folded in, never decayed: feedback ratings plus signalled requests.
  sample_count bigint not null default 0 check (sample_count >= 0),
  updated_at timestamptz not null default now(),
  constraint model_reputation_one_per_target unique nulls not distinct (tenant_id, domain, provider_id, upstream_model)
);
comment on table public.model_reputation is 'Decayed reputation per tenant (or global), domain, provider and model, from feedback and automatic signals; read by quality routing.';
create index model_reputation_provider_id_idx on public.model_reputation (provider_id);

alter table public.model_quality_signals enable row level security;
alter table public.model_reputation enable row level security;
revoke all on table public.model_quality_signals, public.model_reputation from anon, authenticated;
grant select on table public.model_reputation to authenticated;
grant all on table public.model_quality_signals, public.model_reputation to service_role;

create policy "Members can read global and their tenants' reputation"
  on public.model_reputation for select to authenticated
  using (tenant_id is null or tenant_id in (select private.tenant_ids_of_current_user()));

-- Stores one batch of automatic outcomes, as aggregated by an isolate:
-- [{tenant_id, domain, provider_id, upstream_model, requests, failures, kinds}].
create function public.record_quality_signals(p_signals jsonb)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_count integer;
begin
  if pg_catalog.jsonb_typeof(p_signals) <> 'array' then
    raise exception 'record_quality_signals takes a JSON array' using errcode = 'invalid_parameter_value';
  end if;
  insert into public.model_quality_signals (tenant_id, domain, provider_id, upstream_model, requests, failures, kinds)
  select s.tenant_id, coalesce(s.domain, ''), s.provider_id, s.upstream_model, s.requests, s.failures,
         coalesce(s.kinds, '{}'::jsonb)
  from pg_catalog.jsonb_to_recordset(p_signals) as s(
    tenant_id uuid, domain text, provider_id uuid, upstream_model text, requests integer, failures integer, kinds jsonb)
  where s.requests > 0;
  get diagnostics v_count = row_count;
  return v_count;
end
$$;
comment on function public.record_quality_signals(jsonb) is 'Stores a batch of automatic quality outcomes from a router isolate (not called per request).';
revoke execute on function public.record_quality_signals(jsonb) from public, anon, authenticated;
grant execute on function public.record_quality_signals(jsonb) to service_role;

-- Folds up to p_batch_size pending ratings and p_batch_size signal rows into
-- model_reputation; returns how many it folded (0: nothing pending). Safe to
-- run concurrently (skip locked). Ratings are marked applied, signal rows
-- deleted (they live on only as decayed totals).
create function public.refresh_model_reputation(
  p_batch_size integer default 1000,
  p_half_life_seconds double precision default 604800
)
returns integer
language plpgsql
set search_path = ''
as $$
declare
  v_feedback uuid[];
  v_signals bigint[];
begin
  if p_batch_size is null or p_batch_size not between 1 and 100000 then
    raise exception 'batch size must be between 1 and 100000' using errcode = 'invalid_parameter_value';
  end if;
  if p_half_life_seconds is null or p_half_life_seconds <= 0 then
    raise exception 'half-life must be above zero seconds' using errcode = 'invalid_parameter_value';
  end if;

  select coalesce(pg_catalog.array_agg(pending.id), '{}') into v_feedback
  from (
    select f.id from public.request_feedback f
    where f.applied_at is null
    order by f.created_at
    limit p_batch_size
    for update skip locked
  ) pending;
  select coalesce(pg_catalog.array_agg(pending.id), '{}') into v_signals
  from (
    select s.id from public.model_quality_signals s
    order by s.id
    limit p_batch_size
    for update skip locked
  ) pending;

  with observations as (
    select f.tenant_id, f.domain, f.provider_id, f.upstream_model,
           1::double precision as feedback_weight, f.score::double precision as feedback_sum,
           0::double precision as requests, 0::double precision as failures, 1::bigint as samples
    from public.request_feedback f
    where f.id = any (v_feedback) and f.provider_id is not null and f.upstream_model is not null
    union all
    select s.tenant_id, s.domain, s.provider_id, s.upstream_model, 0, 0, s.requests, s.failures, s.requests
    from public.model_quality_signals s
    where s.id = any (v_signals)
  ),
  scoped as (
    select target.tenant_id, target.domain, o.provider_id, o.upstream_model, o.feedback_weight, o.feedback_sum,
           o.requests, o.failures, o.samples
    from observations o
    cross join lateral (values (1, o.tenant_id, o.domain), (2, null::uuid, o.domain), (3, o.tenant_id, ''), (4, null::uuid, ''))
      as target(n, tenant_id, domain)
    where o.domain <> '' or target.n in (3, 4)
  ),
  batch as (
    select s.tenant_id, s.domain, s.provider_id, s.upstream_model, sum(s.feedback_weight) as feedback_weight,
           sum(s.feedback_sum) as feedback_sum, sum(s.requests) as requests, sum(s.failures) as failures,
           sum(s.samples) as samples
    from scoped s
    group by s.tenant_id, s.domain, s.provider_id, s.upstream_model
  )
  insert into public.model_reputation as m (
    tenant_id, domain, provider_id, upstream_model, feedback_score, feedback_weight, signal_requests,
    signal_failures, sample_count, updated_at)
  select b.tenant_id, b.domain, b.provider_id, b.upstream_model,
         case when b.feedback_weight > 0 then b.feedback_sum / b.feedback_weight else 0.5 end,
         b.feedback_weight, b.requests, b.failures, b.samples, now()
  from batch b
  on conflict on constraint model_reputation_one_per_target do update set
    feedback_score = case
      when m.feedback_weight * private.reputation_decay(m.updated_at, p_half_life_seconds) + excluded.feedback_weight > 0
      then least(1, greatest(0,
        (m.feedback_score * m.feedback_weight * private.reputation_decay(m.updated_at, p_half_life_seconds)
          + excluded.feedback_score * excluded.feedback_weight)
        / (m.feedback_weight * private.reputation_decay(m.updated_at, p_half_life_seconds) + excluded.feedback_weight)))
      else m.feedback_score end,
    feedback_weight = m.feedback_weight * private.reputation_decay(m.updated_at, p_half_life_seconds)
      + excluded.feedback_weight,
    signal_requests = m.signal_requests * private.reputation_decay(m.updated_at, p_half_life_seconds)
      + excluded.signal_requests,
    signal_failures = m.signal_failures * private.reputation_decay(m.updated_at, p_half_life_seconds)
      + excluded.signal_failures,
    sample_count = m.sample_count + excluded.sample_count,
    updated_at = now();

  update public.request_feedback f set applied_at = now() where f.id = any (v_feedback);
  delete from public.model_quality_signals s where s.id = any (v_signals);
  return pg_catalog.cardinality(v_feedback) + pg_catalog.cardinality(v_signals);
end
$$;
comment on function public.refresh_model_reputation(integer, double precision) is 'Folds pending feedback and quality signals into model_reputation in batches, decaying older evidence by its half-life (a job).';
revoke execute on function public.refresh_model_reputation(integer, double precision) from public, anon, authenticated;
grant execute on function public.refresh_model_reputation(integer, double precision) to service_role;

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
  request_id text not null references public.usage_records (request_id) on delete cascade,
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
-- usage record of this tenant (another tenant's request looks the same).
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
  select u.provider, u.upstream_model, coalesce(r.domain, '') as domain
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
